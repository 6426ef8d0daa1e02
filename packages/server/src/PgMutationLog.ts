/**
 * The `MutationLog` in PostgreSQL, for when one machine is not enough: several server processes
 * may share one database.
 *
 * - Every append transaction (one per group of appends waiting in this process: group commit)
 *   takes a transaction-scoped advisory lock before it reads anything, and assigns seqs as
 *   `max(seq) + 1…` under it. Appends therefore commit one group at a time, in seq order: when
 *   a puller sees seq `n`, every seq below `n` is already visible, so no cursor skips one, and
 *   there are no gaps (not even after refused batches or retries, which a sequence would leave).
 * - A committed append is announced with `pg_notify` (sent inside the transaction, so it is
 *   delivered at commit); every process `LISTEN`s and wakes its held pulls. A slow poll of the
 *   latest seq covers a lost notification or a dropped listen connection.
 * - Payloads are stored as their JSON text (not `jsonb`, which would reorder keys), so they
 *   round-trip exactly. The tables live in the connection's `current_schema()`; the advisory
 *   lock and the notifications are scoped to it, so several schemas can share one database.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Migrations from "./internal/migrations.js"
import * as SqlLog from "./internal/sqlLog.js"
import type * as MutationLogModule from "./MutationLog.js"
import { MutationLog, MutationLogError } from "./MutationLog.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * The LISTEN/NOTIFY channel. Defaults to `autosync_log`. Notifications carry the schema, so
   * servers on other schemas of the same database ignore each other's.
   */
  readonly channel?: string | undefined
  /**
   * How often, while a pull is held, the latest seq is re-read in case a notification was
   * missed (no pull held, no reads). Defaults to 1 second.
   */
  readonly pollInterval?: Duration.DurationInput | undefined
  /**
   * Listen for other processes' new seqs (what wakes held pulls). Defaults to true; one-shot
   * tools that hold no pulls (`autosync compact`) turn it off and open no listening connection.
   */
  readonly listen?: boolean | undefined
}

const SchemaRow = Schema.Struct({ schema: Schema.String })

/**
 * The log over the `PgClient` in context; runs the server's migrations first.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<
  MutationLog,
  SqlError | Migrator.MigrationError | MutationLogError,
  PgClient.PgClient | SqlClient.SqlClient
> =>
  Layer.scoped(
    MutationLog,
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      const channel = options.channel ?? "autosync_log"
      const [{ schema }] = yield* pg`SELECT coalesce(current_schema(), '') AS schema`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Tuple(SchemaRow))),
        Effect.orDie
      )
      const prefix = `${schema}:`
      return yield* SqlLog.make({
        lock: pg`SELECT pg_advisory_xact_lock(hashtext(${`autosync_log:${schema}`}::text))`,
        // PgClient.notify sends `NOTIFY chan, $1`, which PostgreSQL rejects: use pg_notify.
        announce: (latest) => pg`SELECT pg_notify(${channel}, ${`${prefix}${latest}`})`,
        hints: options.listen === false ? Stream.empty : pg.listen(channel).pipe(
          Stream.filterMap((payload) =>
            payload.startsWith(prefix)
              ? Option.filter(Option.some(Number(payload.slice(prefix.length))), Number.isSafeInteger)
              : Option.none()
          )
        )
      }, { pollInterval: options.pollInterval ?? Duration.seconds(1) })
    })
  ).pipe(Layer.provide(Migrations.layer))

/**
 * The log's stats (see `MutationLog.stats`) of the database at `url`, read without migrating or
 * writing anything.
 *
 * @since 0.1.0
 * @category constructors
 */
export const readStats = (
  url: Redacted.Redacted | string
): Effect.Effect<MutationLogModule.LogStats, SqlError | MutationLogError> =>
  Effect.scoped(
    Effect.flatMap(Layer.build(layerClient({ url, maxConnections: 1 })), (context) =>
      Effect.gen(function*() {
        const pg = Context.get(context, PgClient.PgClient)
        const [{ ready }] = yield* pg<{ readonly ready: boolean }>`SELECT
          to_regclass('autosync_compaction') IS NOT NULL AS ready`
        if (!ready) {
          return yield* new MutationLogError({
            reason: "storage",
            message: "the database has no autosync server log with compaction tables (in its current schema): " +
              "`autosync serve` or `autosync compact` on it brings it up to date"
          })
        }
        return yield* Effect.provide(SqlLog.statsOf, context)
      }))
  )

/**
 * A `PgClient` (and `SqlClient`) for a database URL. `maxConnections` defaults to 10.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient = (options: {
  readonly url: Redacted.Redacted | string
  readonly maxConnections?: number | undefined
}): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError> =>
  PgClient.layer({
    url: typeof options.url === "string" ? Redacted.make(options.url) : options.url,
    maxConnections: options.maxConnections ?? 10,
    applicationName: "autosync-server"
  })

/**
 * The log in the database at `url`, migrated: `layer` over `layerClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerUrl = (
  options: Options & { readonly url: Redacted.Redacted | string; readonly maxConnections?: number | undefined }
): Layer.Layer<MutationLog, SqlError | Migrator.MigrationError | MutationLogError> =>
  layer(options).pipe(Layer.provide(layerClient(options)))
