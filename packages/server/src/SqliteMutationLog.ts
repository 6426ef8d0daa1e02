/**
 * The `MutationLog` in one SQLite file: the server's default store. Seqs are assigned inside the
 * append transaction (SQLite runs one writer at a time), payloads are stored as their JSON text
 * so they round-trip exactly. Meant for one server process per file; the CLI may still create
 * tokens in the same file while it runs (a busy timeout covers the short write lock).
 *
 * @since 0.1.0
 */
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import type * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Migrations from "./internal/migrations.js"
import * as SqlLog from "./internal/sqlLog.js"
import type { MutationLogError } from "./MutationLog.js"
import { MutationLog } from "./MutationLog.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * How often the latest seq is re-read for held pulls, in case another process appended.
   * Defaults to 1 second.
   */
  readonly pollInterval?: Duration.DurationInput | undefined
}

/**
 * The log over the `SqlClient` in context (a SQLite one); runs the server's migrations first.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<MutationLog, SqlError | Migrator.MigrationError | MutationLogError, SqlClient.SqlClient> =>
  Layer.scoped(
    MutationLog,
    SqlLog.make({
      lock: Effect.void,
      announce: () => Effect.void,
      hints: Stream.empty
    }, { pollInterval: options.pollInterval ?? Duration.seconds(1) })
  ).pipe(Layer.provide(Migrations.layer))

/**
 * A `SqlClient` on a SQLite file (created when missing), in WAL mode with a 5 s busy timeout.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient = (
  options: { readonly file: string }
): Layer.Layer<SqlClient.SqlClient, SqlError | ConfigError.ConfigError> =>
  Layer.effect(
    SqlClient.SqlClient,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`PRAGMA busy_timeout = 5000`
      return sql
    })
  ).pipe(Layer.provide(SqliteClient.layer({ filename: options.file })))

/**
 * The log in a SQLite file, migrated: `layer` over `layerClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFile = (
  options: Options & { readonly file: string }
): Layer.Layer<MutationLog, SqlError | ConfigError.ConfigError | Migrator.MigrationError | MutationLogError> =>
  layer(options).pipe(Layer.provide(layerClient(options)))
