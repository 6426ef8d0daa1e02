/**
 * `LocalStore` on SQLite, with the same semantics as `LocalStore.layerMemory` (one shared suite
 * checks both). This module assembles the store from its parts under `internal/`:
 *
 * - `rows.ts`: the tables' rows, decoded with Schema at the boundary (in plain code, once per
 *   page, where a page is a thousand rows).
 * - `insert.ts`: multi-row inserts bound flat, without a statement compiled per row.
 * - `db.ts`: what the parts share. Every write path is one transaction whose first statement
 *   takes SQLite's write lock, so a transaction never reads a snapshot that another process
 *   changes under it; with WAL mode and a busy timeout, several processes can share one file.
 * - `journal.ts`: `appendLocal` applies each write through its entity's applier and journals it
 *   in one transaction; pending rows, acks, enrollment.
 * - `apply.ts`: `applyPulledMutations` applies a page and advances the cursor in one
 *   transaction, so a crash applies nothing twice and loses nothing; what to do with each
 *   mutation, and with kept-aside ones after an ack, is `Merge`'s convergence rule; dead letters.
 * - `state.ts`: the sync state, failure marks, and the lease: one conditional upsert on
 *   `sync_state`, with `now` passed in by the caller (Effect's `Clock`), never SQL's clock, so
 *   at most one owner holds it, across processes.
 * - `identity.ts`: `clientId`, created once, with the database, from SQLite's `randomblob`, and
 *   stored in `sync_meta`; `reidentify`.
 * - `documents.ts`: reads of the built-in document table.
 * - `open.ts`: opening a file (checks, busy timeout, WAL).
 *
 * @since 0.1.0
 */
import { LocalStore } from "@autosync/core"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Apply from "./internal/apply.js"
import { retryWhileBusy } from "./internal/busy.js"
import * as Db from "./internal/db.js"
import * as Documents from "./internal/documents.js"
import { fromCause } from "./internal/errors.js"
import * as Identity from "./internal/identity.js"
import * as Journal from "./internal/journal.js"
import * as Open from "./internal/open.js"
import * as Readonly from "./internal/readonly.js"
import * as State from "./internal/state.js"
import * as ReplicaFile from "./ReplicaFile.js"

/**
 * A `LocalStore` over the `SqlClient` in context. Checks the schema version, runs the
 * migrations and creates the `clientId` on first use; on a read-only `SqliteClient` it does
 * neither and only reads (see {@link layerFileReadonly}). Entities are applied through the
 * `Applier` registry in context (the document table when none is provided).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<LocalStore.LocalStore["Type"], LocalStore.LocalStoreError, SqlClient.SqlClient> =
  Effect.gen(function*() {
    const label = yield* Open.describeDatabase
    // On a read-only connection (`layerFileReadonly`): no migrations, no new client id.
    const readonly = yield* Open.isReadonlyConnection
    yield* Open.prepare(label, readonly)
    const db = yield* Db.make(label)
    const identity = yield* Identity.make(db, readonly)
    return LocalStore.LocalStore.of({
      get clientId() {
        return identity.clientId
      },
      ...State.make(db),
      ...Journal.make(db),
      ...Apply.make(db),
      ...Documents.make(db),
      reidentify: identity.reidentify
    })
  })

/**
 * The SQLite `LocalStore` over the `SqlClient` in context (see {@link make}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<LocalStore.LocalStore, LocalStore.LocalStoreError, SqlClient.SqlClient> = Layer
  .effect(LocalStore.LocalStore, make)

/**
 * Gives back to the file system every free page of the database in context, in bounded steps
 * of incremental vacuum (each its own short write, so writers of other processes are never held
 * for long). The store already takes such a step after a write that freed many pages; this is
 * for a caller that wants the file at its smallest now (a test, a bench, a backup). Returns the
 * pages given back.
 *
 * @since 0.1.0
 * @category maintenance
 */
export const reclaimSpace: Effect.Effect<number, LocalStore.LocalStoreError, SqlClient.SqlClient> = Effect.gen(
  function*() {
    const sql = yield* SqlClient.SqlClient
    const label = yield* Open.describeDatabase
    const step = <A, E>(effect: Effect.Effect<A, E>) =>
      Effect.mapError(effect, (error) => fromCause(label, "reclaiming free space", error))
    const freePages = sql<{ n: number }>`SELECT freelist_count AS n FROM pragma_freelist_count()`.pipe(
      Effect.map((rows) => rows[0]?.n ?? 0)
    )
    let given = 0
    while (true) {
      const free = yield* step(freePages)
      if (free === 0) return given
      yield* step(Db.incrementalVacuum(sql, Math.min(free, 512)))
      const left = yield* step(freePages)
      given += free - left
      // Not a file in incremental mode (or nothing moved): nothing more to give back.
      if (left >= free) return given
    }
  }
)

/**
 * Options of {@link layerFile}.
 *
 * @since 0.1.0
 * @category models
 */
export interface FileOptions {
  /**
   * How long a statement waits for another connection's lock before failing with a storage
   * error. Defaults to 5 seconds. Longer rides out long transactions of other processes;
   * shorter surfaces contention sooner.
   */
  readonly busyTimeout?: Duration.DurationInput
  /**
   * SQLite's `synchronous` setting. Defaults to `"full"`: every commit is on disk before it
   * returns, even across a power loss. `"normal"` (with WAL) syncs less often, which makes
   * applying a large pull several times faster; a crash of the process (kill -9) still loses
   * nothing, but a power loss may undo the last commits (never corrupting the file).
   */
  readonly synchronous?: "full" | "normal"
}

/**
 * Opens a database file, creating it when missing: refuses a file that is not a SQLite
 * database, that holds an autosync server's tables, or that a newer autosync wrote (reason
 * `"incompatible"`, nothing changed; see `ReplicaFile`), sets a busy timeout and WAL mode.
 * Steps that meet another process's lock (several processes opening a new file at once) are
 * retried until the busy timeout.
 *
 * @since 0.1.0
 * @category constructors
 */
export const openFile = (
  path: string,
  options: FileOptions = {}
): Effect.Effect<SqliteClient.SqliteClient, LocalStore.LocalStoreError, Scope.Scope | Reactivity.Reactivity> =>
  Open.openFile(path, options)

/**
 * A ready-made store on a database file: the `SqliteClient` (WAL mode, busy timeout), the
 * migrations and the `LocalStore`. Fails with a `LocalStoreError` naming the path when the
 * file is not a SQLite database or was written by a newer schema (`"incompatible"`), or
 * cannot be opened or written (`"storage"`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFile = (
  path: string,
  options: FileOptions = {}
): Layer.Layer<
  LocalStore.LocalStore | SqlClient.SqlClient | SqliteClient.SqliteClient,
  LocalStore.LocalStoreError
> =>
  Layer.scopedContext(Effect.gen(function*() {
    const client = yield* openFile(path, options)
    // Migrations and the client id: retried while another process initialising the file holds the lock.
    const store = yield* retryWhileBusy(
      make.pipe(
        Effect.provideService(SqlClient.SqlClient, client),
        Effect.provideService(SqliteClient.SqliteClient, client)
      ),
      `${Open.busyMillisOf(options)} millis`
    )
    return Context.make(LocalStore.LocalStore, store).pipe(
      Context.add(SqlClient.SqlClient, client),
      Context.add(SqliteClient.SqliteClient, client)
    )
  })).pipe(Layer.provide(Reactivity.layer))

/**
 * A store on an existing replica, opened read-only: a SQLite read-only connection, no
 * migrations, no client id created, no WAL switch, nothing written (see
 * `ReplicaFile.openReadonly`, which also says what happens to the `-wal`/`-shm` side files).
 * Fails with a `LocalStoreError` naming the file when it is missing, empty, not SQLite, a SQLite
 * database without autosync's tables, an autosync server's database, or a replica of a newer
 * or an older autosync (reason `"incompatible"`; an older one is migrated by opening it once
 * with {@link layerFile}).
 *
 * Every read of `LocalStore` (and of `Documents` over it) works; every write fails with a
 * `LocalStoreError` saying the store was opened read-only. Another process may write the file
 * meanwhile: each read sees the last committed state.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFileReadonly = (
  path: string,
  options: Pick<FileOptions, "busyTimeout"> = {}
): Layer.Layer<
  LocalStore.LocalStore | SqlClient.SqlClient | SqliteClient.SqliteClient,
  LocalStore.LocalStoreError
> =>
  Layer.scopedContext(Effect.gen(function*() {
    const busyMillis = Open.busyMillisOf(options)
    const client = yield* ReplicaFile.openReadonly(path, { busyTimeoutMillis: busyMillis })
    const store = yield* retryWhileBusy(
      make.pipe(
        Effect.provideService(SqlClient.SqlClient, client),
        Effect.provideService(SqliteClient.SqliteClient, client)
      ),
      `${busyMillis} millis`
    )
    return Context.make(LocalStore.LocalStore, Readonly.guard(store, JSON.stringify(path))).pipe(
      Context.add(SqlClient.SqlClient, client),
      Context.add(SqliteClient.SqliteClient, client)
    )
  })).pipe(Layer.provide(Reactivity.layer))
