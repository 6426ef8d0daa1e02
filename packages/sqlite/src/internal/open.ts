/**
 * Opening a replica file on SQLite: the checks before anything is written, the busy timeout,
 * WAL mode; and what the store checks about its connection (which database, read-only or not).
 *
 * @internal
 */
import { LocalStore } from "@autosync/core"
import type * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as ReplicaFile from "../ReplicaFile.js"
import * as SqliteMigrations from "../SqliteMigrations.js"
import { retryWhileBusy } from "./busy.js"
import { fromCause, fromSqlError } from "./errors.js"

/** The database, as messages name it: its file name when the client is a `SqliteClient`. */
export const describeDatabase: Effect.Effect<string> = Effect.map(
  Effect.serviceOption(SqliteClient.SqliteClient),
  Option.match({
    onNone: () => "the SQLite database",
    onSome: (client) => JSON.stringify(client.config.filename)
  })
)

/** Whether the connection was opened read-only (`layerFileReadonly`). */
export const isReadonlyConnection: Effect.Effect<boolean> = Effect.map(
  Effect.serviceOption(SqliteClient.SqliteClient),
  Option.match({ onNone: () => false, onSome: (client) => client.config.readonly === true })
)

/**
 * Makes the schema ready: migrated on a writable connection; on a read-only one, which can
 * migrate nothing, a replica this version reads.
 */
export const prepare = (
  label: string,
  readonly: boolean
): Effect.Effect<void, LocalStore.LocalStoreError, SqlClient.SqlClient> =>
  readonly
    ? Effect.flatMap(ReplicaFile.classify(label), (kind) =>
      kind._tag === "Replica"
        ? SqliteMigrations.checkReadable(label, kind.migration)
        : new LocalStore.LocalStoreError({
          reason: "storage",
          message: `${label} is opened read-only and holds no autosync replica: creating one needs to write it`
        }))
    : SqliteMigrations.run(label)

/** The busy timeout in millis (5 seconds when not given). */
export const busyMillisOf = (options: { readonly busyTimeout?: Duration.DurationInput | undefined }): number =>
  Math.max(0, Math.round(Duration.toMillis(Duration.decode(options.busyTimeout ?? "5 seconds"))))

/** See `SqliteLocalStore.openFile`. */
export const openFile = (
  path: string,
  options: {
    readonly busyTimeout?: Duration.DurationInput | undefined
    readonly synchronous?: "full" | "normal" | undefined
  }
): Effect.Effect<SqliteClient.SqliteClient, LocalStore.LocalStoreError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const label = JSON.stringify(path)
    const busyMillis = busyMillisOf(options)
    // WAL is switched on below, after the checks, so a refused file is left as it was.
    const client = yield* SqliteClient.make({ filename: path, disableWAL: true }).pipe(
      Effect.catchAllDefect((defect) => Effect.fail(fromCause(label, "opening", defect)))
    )
    yield* client.unsafe(`PRAGMA busy_timeout = ${busyMillis}`).pipe(
      Effect.mapError(fromSqlError(label, "setting the busy timeout"))
    )
    // Each step is idempotent: retried while another process opening the file holds the lock.
    yield* retryWhileBusy(
      Effect.gen(function*() {
        yield* client`SELECT COUNT(*) AS n FROM sqlite_master`.pipe(Effect.mapError(fromSqlError(label, "opening")))
        const kind = yield* ReplicaFile.classify(label)
        if (kind._tag === "Server") return yield* ReplicaFile.refuse(path, kind)
        yield* SqliteMigrations.checkVersion(label)
        yield* client.unsafe(`PRAGMA synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`).pipe(
          Effect.mapError(fromSqlError(label, "setting synchronous"))
        )
        // A new file gets its tables after this, so it needs no VACUUM to take it (see
        // `SqliteMigrations.ensureIncrementalVacuum`); on a file with tables it changes nothing.
        yield* client.unsafe("PRAGMA auto_vacuum = INCREMENTAL").pipe(
          Effect.mapError(fromSqlError(label, "setting auto_vacuum"))
        )
        yield* client.unsafe("PRAGMA journal_mode = WAL").pipe(
          Effect.mapError(fromSqlError(label, "switching to WAL mode"))
        )
      }).pipe(Effect.provideService(SqlClient.SqlClient, client)),
      `${busyMillis} millis`
    )
    return client
  })
