/**
 * What kind of file a path holds, told without changing it: missing, empty, not SQLite, a SQLite
 * database without autosync's tables, an autosync server's database, or an autosync replica.
 *
 * Every way of opening a file in this package asks here first, so the rule lives in one place:
 * `SqliteLocalStore.layerFile` (which creates and migrates) refuses a server's database, and
 * `SqliteLocalStore.layerFileReadonly` refuses everything but a replica. A server can use
 * {@link inspect} the other way round, to refuse a replica's file.
 *
 * ```ts
 * const kind = yield* ReplicaFile.inspect("app.db")
 * if (kind._tag !== "Replica") yield* Console.error(ReplicaFile.describe("app.db", kind))
 * ```
 *
 * @since 0.1.0
 */
import { DatabaseKind, LocalStore } from "@autosync/core"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs"
import { retryWhileBusy } from "./internal/busy.js"
import { fromCause } from "./internal/errors.js"
import * as SqliteMigrations from "./SqliteMigrations.js"

/**
 * The kinds of file. `Replica` carries what its `sync_meta` and migrations table say (0 when
 * absent).
 *
 * @since 0.1.0
 * @category models
 */
export type Kind = Data.TaggedEnum<{
  /** Nothing at the path. */
  Missing: {}
  /** A file of zero bytes (SQLite would take it for a new database). */
  Empty: {}
  /** A file or directory that is not a SQLite database. */
  NotSqlite: {}
  /** A SQLite database without autosync's tables (e.g. an application's own database). */
  Plain: {}
  /** An autosync server's database (its mutation log or tokens), whatever else it holds. */
  Server: {}
  /** An autosync replica. */
  Replica: { readonly schemaVersion: number; readonly migration: number }
}>

/**
 * Constructors and matchers of {@link Kind}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const Kind = Data.taggedEnum<Kind>()

/**
 * The tables that mark an autosync server's database (the rule is core's `DatabaseKind`).
 *
 * @since 0.1.0
 * @category models
 */
export const serverTables: ReadonlyArray<string> = DatabaseKind.serverTables

/**
 * The tables that mark an autosync replica (the rule is core's `DatabaseKind`).
 *
 * @since 0.1.0
 * @category models
 */
export const replicaTables: ReadonlyArray<string> = DatabaseKind.replicaTables

const sqliteHeader = Buffer.from("SQLite format 3\u0000", "latin1")

/** What the first bytes say, read with plain file I/O (no SQLite connection, nothing created). */
const readHeader = (
  path: string
): Effect.Effect<"Missing" | "Empty" | "NotSqlite" | "Sqlite", LocalStore.LocalStoreError> =>
  Effect.try({
    try: () => {
      if (!existsSync(path)) return "Missing"
      const info = statSync(path)
      if (!info.isFile()) return "NotSqlite"
      if (info.size === 0) return "Empty"
      const head = Buffer.alloc(sqliteHeader.length)
      const fd = openSync(path, "r")
      try {
        const n = readSync(fd, head, 0, head.length, 0)
        return n === head.length && head.equals(sqliteHeader) ? "Sqlite" : "NotSqlite"
      } finally {
        closeSync(fd)
      }
    },
    catch: (cause) => fromCause(JSON.stringify(path), "opening", cause)
  })

const TableNames = Schema.Array(Schema.Struct({ name: Schema.String }))
const VersionRows = Schema.Array(Schema.Struct({ value: Schema.String }))
const MigrationRows = Schema.Array(Schema.Struct({ id: Schema.NullOr(Schema.Number) }))

/**
 * The kind of the SQLite database behind the `SqlClient` in context, from its table names (the
 * rule is core's `DatabaseKind.fromTables`) and, for a replica, its schema version and last
 * migration. Reads only.
 *
 * @since 0.1.0
 * @category constructors
 */
export const classify = (label: string): Effect.Effect<Kind, LocalStore.LocalStoreError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql`SELECT name FROM sqlite_master WHERE type = 'table'`.pipe(
      Effect.flatMap(Schema.decodeUnknown(TableNames))
    )
    const names = new Set(rows.map((r) => r.name))
    const kind = DatabaseKind.fromTables(names)
    if (kind._tag !== "Replica") return Kind[kind._tag]()
    const version = names.has("sync_meta")
      ? yield* sql`SELECT value FROM sync_meta WHERE key = 'schema_version'`.pipe(
        Effect.flatMap(Schema.decodeUnknown(VersionRows)),
        Effect.map((rows) => Number(rows[0]?.value ?? 0))
      )
      : 0
    const migration = names.has(SqliteMigrations.migrationsTable)
      ? yield* sql`SELECT MAX(migration_id) AS id FROM ${sql(SqliteMigrations.migrationsTable)}`.pipe(
        Effect.flatMap(Schema.decodeUnknown(MigrationRows)),
        Effect.map((rows) => rows[0]?.id ?? 0)
      )
      : 0
    return Kind.Replica({ schemaVersion: Number.isFinite(version) ? version : 0, migration })
  }).pipe(Effect.mapError((error) => fromCause(label, "reading what the file holds", error)))

/**
 * One line saying what `path` is, for a file that is not the replica that was asked for.
 *
 * @since 0.1.0
 * @category models
 */
export const describe = (path: string, kind: Kind): string => {
  const label = JSON.stringify(path)
  return Kind.$match(kind, {
    Missing: () => `${label} does not exist`,
    Empty: () => `${label} is empty: not an autosync replica (was it truncated?)`,
    NotSqlite: () => `${label} is not a SQLite database`,
    Plain: () => `${label} is a SQLite database without autosync's tables, not an autosync replica`,
    Server: () => `${label} is an autosync server database, not a replica (give the replica's --db)`,
    Replica: () => `${label} is an autosync replica`
  })
}

/**
 * A failure naming what `path` is (reason `"incompatible"`, or `"storage"` when it is missing).
 *
 * @since 0.1.0
 * @category errors
 */
export const refuse = (path: string, kind: Kind): LocalStore.LocalStoreError =>
  new LocalStore.LocalStoreError({
    reason: kind._tag === "Missing" ? "storage" : "incompatible",
    message: describe(path, kind)
  })

const sideFiles = (path: string) => [`${path}-wal`, `${path}-shm`]

/** A read-only connection, after the header check; side files it leaves are tidied with the scope. */
const connectReadonly = (path: string) =>
  Effect.gen(function*() {
    const header = yield* readHeader(path)
    if (header !== "Sqlite") return yield* refuse(path, Kind[header]())
    if (!sideFiles(path).some(existsSync)) yield* Effect.addFinalizer(() => tidySideFiles(path))
    return yield* SqliteClient.make({ filename: path, readonly: true, disableWAL: true }).pipe(
      Effect.catchAllDefect((defect) => Effect.fail(fromCause(JSON.stringify(path), "opening", defect)))
    )
  })

/**
 * Lets SQLite delete the side files a read-only connection left: a read-write connection that
 * reads and closes deletes them when it is the last one on the file. Best effort: a file that
 * cannot be opened for writing keeps them (they are harmless).
 */
const tidySideFiles = (path: string) =>
  Effect.scoped(
    Effect.flatMap(
      SqliteClient.make({ filename: path, disableWAL: true }),
      (client) => client`SELECT COUNT(*) AS n FROM sqlite_master`
    )
  ).pipe(
    Effect.provide(Reactivity.layer),
    Effect.catchAllCause(() => Effect.void),
    Effect.when(() => sideFiles(path).some(existsSync))
  )

/**
 * Opens `path` with a SQLite read-only connection (no WAL switch, no migrations, nothing
 * written) when it is an autosync replica this version reads; fails naming what it is
 * otherwise (see {@link describe}). A replica at an older migration is refused too, with a
 * message to migrate it first (`autosync init`, or any writable open): its tables may lack
 * what this version reads.
 *
 * A read-only connection on a WAL-mode file creates the `-wal` and `-shm` side files when no
 * other connection has them, and leaves them behind. When they were absent before, they are
 * removed when the scope closes by a brief read-write connection that reads one page and
 * closes, which lets SQLite delete them if, and only if, no other connection uses them. The
 * database file itself is never written.
 *
 * @since 0.1.0
 * @category constructors
 */
export const openReadonly = (
  path: string,
  options: { readonly busyTimeoutMillis: number }
): Effect.Effect<SqliteClient.SqliteClient, LocalStore.LocalStoreError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const label = JSON.stringify(path)
    const client = yield* connectReadonly(path)
    yield* client.unsafe(`PRAGMA busy_timeout = ${options.busyTimeoutMillis}`).pipe(
      Effect.mapError((error) => fromCause(label, "setting the busy timeout", error))
    )
    const kind = yield* retryWhileBusy(
      classify(label).pipe(Effect.provideService(SqlClient.SqlClient, client)),
      `${options.busyTimeoutMillis} millis`
    )
    if (kind._tag !== "Replica") return yield* refuse(path, kind)
    yield* SqliteMigrations.checkReadable(label, kind.migration).pipe(
      Effect.provideService(SqlClient.SqlClient, client)
    )
    return client
  })

/**
 * What `path` holds, without changing it (see {@link Kind}). Fails only when the file cannot be
 * read, or looks like SQLite but is damaged.
 *
 * @since 0.1.0
 * @category constructors
 */
export const inspect = (path: string): Effect.Effect<Kind, LocalStore.LocalStoreError> =>
  Effect.gen(function*() {
    const header = yield* readHeader(path)
    if (header !== "Sqlite") return Kind[header]()
    return yield* Effect.scoped(
      Effect.flatMap(connectReadonly(path), (client) =>
        classify(JSON.stringify(path)).pipe(Effect.provideService(SqlClient.SqlClient, client)))
    )
  }).pipe(Effect.provide(Reactivity.layer))
