/**
 * The `MutationLog` in one SQLite file: the server's default store. Seqs are assigned inside the
 * append transaction (SQLite runs one writer at a time), payloads are stored as their JSON text
 * so they round-trip exactly. Meant for one server process per file; the CLI may still create
 * tokens in the same file while it runs (a busy timeout covers the short write lock).
 *
 * @since 0.1.0
 */
import { DatabaseKind } from "@autosync/core"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import type * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Migrations from "./internal/migrations.js"
import * as SqlLog from "./internal/sqlLog.js"
import type * as MutationLogModule from "./MutationLog.js"
import type { MutationLogError } from "./MutationLog.js"
import { MutationLog } from "./MutationLog.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * How often, while a pull is held, the latest seq is re-read in case another process appended
   * to the file (no pull held, no reads). Defaults to 30 seconds: this process's own appends wake its held pulls at once, and one
   * server process per file is the intended set-up, so the poll is only a backstop (an idle server
   * should not wake every second for it). A pull held across another process's append is answered
   * by this poll or at the end of its wait, whichever comes first.
   */
  readonly pollInterval?: Duration.DurationInput | undefined
}

const defaultPollInterval = Duration.seconds(30)

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
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      SqlLog.make({
        // A write that changes nothing, first in the transaction: it takes SQLite's write lock
        // before anything is read (waiting up to the busy timeout), so another process on the
        // file (`autosync compact` beside a server) never makes a transaction fail half way
        // with SQLITE_BUSY when it upgrades from reading to writing.
        lock: sql`UPDATE autosync_compaction SET id = id WHERE 0`,
        hints: Stream.empty
      }, { pollInterval: options.pollInterval ?? defaultPollInterval }))
  ).pipe(Layer.provide(Migrations.layer))

/**
 * The file given for the server's SQLite database cannot be used: its directory is missing, it
 * is not a SQLite database, it is an autosync replica (the local store's file, not the server's),
 * or SQLite could not open it. The message names the file; nothing was changed.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServerFileError extends Schema.TaggedError<ServerFileError>()("ServerFileError", {
  file: Schema.String,
  message: Schema.String
}) {}

const messageOf = (u: unknown) => u instanceof Error ? u.message : String(u)

// Read without writing: no WAL switch, no migration, and a read-only handle.
const tablesOf = (file: string) =>
  Effect.scoped(
    Effect.flatMap(
      SqliteClient.make({ filename: file, readonly: true, disableWAL: true }),
      (sql) => sql<{ readonly name: string }>`SELECT name FROM sqlite_master WHERE type = 'table'`
    )
  ).pipe(Effect.map((rows) => rows.map((row) => row.name)), Effect.provide(Reactivity.layer))

/**
 * Checks, before anything opens it for writing, that `file` may hold the server's tables: a
 * missing file in an existing directory, an empty file, or a SQLite database that is not a
 * replica. The file is only read (a read-only connection; SQLite may still create the `-wal`
 * and `-shm` files a reader of a WAL database needs beside it).
 *
 * @since 0.1.0
 * @category constructors
 */
export const checkFile = (file: string): Effect.Effect<void, ServerFileError> =>
  Effect.gen(function*() {
    const named = JSON.stringify(file)
    const fail = (message: string) => Effect.fail(new ServerFileError({ file, message }))
    const info = yield* Effect.try(() => Fs.statSync(file, { throwIfNoEntry: false })).pipe(
      Effect.catchAll((e) => fail(`cannot read ${named}: ${messageOf(e.error)}`))
    )
    if (info === undefined) {
      const dir = Path.dirname(file)
      const parent = Fs.statSync(dir, { throwIfNoEntry: false })
      if (parent === undefined) return yield* fail(`cannot create ${named}: the directory ${dir} does not exist`)
      if (!parent.isDirectory()) return yield* fail(`cannot create ${named}: ${dir} is not a directory`)
      return
    }
    if (info.isDirectory()) return yield* fail(`${named} is a directory, not a SQLite database file`)
    if (info.size === 0) return // SQLite's own view of an empty file: a new database
    const header = yield* Effect.try(() => {
      const fd = Fs.openSync(file, "r")
      try {
        const buffer = Buffer.alloc(16)
        Fs.readSync(fd, buffer, 0, 16, 0)
        return buffer.toString("latin1")
      } finally {
        Fs.closeSync(fd)
      }
    }).pipe(Effect.catchAll((e) => fail(`cannot read ${named}: ${messageOf(e.error)}`)))
    if (header !== "SQLite format 3\u0000") return yield* fail(`${named} is not a SQLite database`)
    const tables = yield* tablesOf(file).pipe(
      Effect.catchAllCause((cause) => fail(`cannot open ${named}: ${messageOf(Cause.squash(cause))}`))
    )
    // A server must not add its tables beside a replica's (the rule is core's `DatabaseKind`).
    const kind = DatabaseKind.fromTables(tables)
    if (kind._tag === "Replica") {
      return yield* fail(
        `${named} is an autosync replica (it has the tables ${kind.found.join(", ")}), not a server database: ` +
          `give the server its own file (the default is ./autosync-server.db)`
      )
    }
  })

/**
 * The log's stats (see `MutationLog.stats`) of an existing server file, read through a
 * read-only connection: nothing is migrated or written. A file the server never migrated to
 * compaction (an older version's) fails, saying so.
 *
 * @since 0.1.0
 * @category constructors
 */
export const readStats = (
  file: string
): Effect.Effect<MutationLogModule.LogStats, ServerFileError | MutationLogError> =>
  Effect.gen(function*() {
    const sideFiles = [`${file}-wal`, `${file}-shm`]
    const hadSideFiles = sideFiles.some((f) => Fs.existsSync(f))
    yield* checkFile(file)
    const tables = yield* tablesOf(file).pipe(
      Effect.catchAllCause((cause) =>
        Effect.fail(
          new ServerFileError({
            file,
            message: `cannot open ${JSON.stringify(file)}: ${messageOf(Cause.squash(cause))}`
          })
        )
      )
    )
    if (!tables.includes("autosync_compaction")) {
      return yield* new ServerFileError({
        file,
        message: `${JSON.stringify(file)} has no compaction tables yet: \`autosync serve\` or \`autosync compact\` ` +
          `on it brings it up to date`
      })
    }
    const stats = yield* Effect.scoped(
      Effect.flatMap(
        SqliteClient.make({ filename: file, readonly: true, disableWAL: true }).pipe(Effect.orDie),
        (sql) => Effect.provideService(SqlLog.statsOf, SqlClient.SqlClient, sql)
      )
    ).pipe(Effect.provide(Reactivity.layer))
    // A read-only connection leaves the WAL side files it created: a brief read-write one that
    // reads and closes lets SQLite delete them (only when no other connection uses them).
    if (!hadSideFiles && sideFiles.some((f) => Fs.existsSync(f))) {
      yield* Effect.scoped(
        Effect.flatMap(
          SqliteClient.make({ filename: file, disableWAL: true }),
          (sql) => sql`SELECT COUNT(*) AS n FROM sqlite_master`
        )
      ).pipe(Effect.provide(Reactivity.layer), Effect.catchAllCause(() => Effect.void))
    }
    return stats
  })

/**
 * A `SqlClient` on a SQLite file (created when missing), in WAL mode with a 5 s busy timeout.
 * The file is checked first ({@link checkFile}): a replica's file, or one that is not SQLite,
 * is refused unchanged with a `ServerFileError`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient = (
  options: { readonly file: string }
): Layer.Layer<SqlClient.SqlClient, SqlError | ServerFileError> =>
  Layer.scopedContext(
    Effect.gen(function*() {
      yield* checkFile(options.file)
      // better-sqlite3 throws while opening (a defect for SqliteClient): name the file instead.
      const sql = yield* SqliteClient.make({ filename: options.file }).pipe(
        Effect.catchAllDefect((defect) =>
          Effect.fail(
            new ServerFileError({
              file: options.file,
              message: `cannot open ${JSON.stringify(options.file)}: ${messageOf(defect)}`
            })
          )
        )
      )
      yield* sql`PRAGMA busy_timeout = 5000`
      return Context.make(SqlClient.SqlClient, sql)
    })
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * The log in a SQLite file, migrated: `layer` over `layerClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFile = (
  options: Options & { readonly file: string }
): Layer.Layer<MutationLog, SqlError | ServerFileError | Migrator.MigrationError | MutationLogError> =>
  layer(options).pipe(Layer.provide(layerClient(options)))
