/**
 * A local replica as the commands open it: the SQLite file, its `LocalStore`, the `Documents`
 * write API and, for `agent` and `demo`, a running `SyncManager` against a server.
 *
 * @since 0.1.0
 */
import { DirtySignal, LocalStore, SyncConfig, SyncManager } from "@autosync/core"
import { HttpCloudTransport } from "@autosync/http"
import { Documents, SqliteLocalStore } from "@autosync/sqlite"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as CliError from "./CliError.js"

/**
 * The store and write API of a database file (created and migrated when missing). A server's
 * database is refused, naming the file, and left as it was.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLocal = (file: string) =>
  Documents.layer.pipe(
    Layer.provideMerge(SqliteLocalStore.layerFile(file)),
    Layer.provideMerge(DirtySignal.layer)
  )

/**
 * The store and `Documents` of an existing replica, opened read-only for commands that only read
 * (`status`, `get`, `list`): nothing in the file changes, no client id or tables are added. A
 * missing file is an error (a mistyped `--db` must not silently create a new, empty replica),
 * and so is a file that is not a replica (a server's database, another SQLite database, a text
 * file): the message says what it is. `mode: "write"` opens it writable (for `reidentify`),
 * with the same refusals.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerExisting = (file: string, mode: "read" | "write" = "read") =>
  Layer.unwrapEffect(
    Effect.flatMap(FileSystem.FileSystem, (fs) => Effect.option(fs.stat(file))).pipe(
      Effect.flatMap((info) =>
        info._tag === "None"
          ? Effect.fail(CliError.notFound(`no replica at ${file} (give --db; \`autosync init\` creates one)`))
          : info.value.size === BigInt(0) // a file truncated to nothing is damage, not a new replica
          ? Effect.fail(CliError.failure(`${file} is empty: not an autosync replica (was it truncated?)`))
          : Effect.succeed(
            mode === "write"
              ? layerLocal(file)
              : Documents.layer.pipe(Layer.provideMerge(SqliteLocalStore.layerFileReadonly(file)))
          )
      )
    )
  )

/**
 * @since 0.1.0
 * @category models
 */
export interface Running {
  readonly store: LocalStore.LocalStore["Type"]
  readonly documents: Documents.Documents["Type"]
  readonly manager: SyncManager.SyncManager["Type"]
}

/**
 * Opens a replica and runs its manager against a server until the scope closes (which stops
 * the manager and releases the lease). `wrapStore` lets the demo observe what is applied.
 *
 * @since 0.1.0
 * @category constructors
 */
export const run = (options: {
  readonly file: string
  readonly serverUrl: string
  readonly token: Redacted.Redacted | string
  readonly config: SyncConfig.SyncConfig
  readonly wrapStore?: (store: LocalStore.LocalStore["Type"]) => LocalStore.LocalStore["Type"]
  /**
   * Also wake on writes that other processes journal in the file (e.g. `autosync put` beside a
   * running agent), by checking the journal's last seq this often. Off when not given.
   */
  readonly watchJournal?: Duration.DurationInput
}): Effect.Effect<Running, LocalStore.LocalStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      Layer.merge(
        layerLocal(options.file),
        HttpCloudTransport.layer({ baseUrl: options.serverUrl, token: options.token })
      )
    )
    const raw = Context.get(context, LocalStore.LocalStore)
    const store = options.wrapStore ? options.wrapStore(raw) : raw
    // The innermost provide wins: the (possibly wrapped) store first, then the rest of the context.
    const manager = yield* SyncManager.make(options.config).pipe(
      Effect.provideService(LocalStore.LocalStore, store),
      Effect.provide(context)
    )
    yield* Effect.forkScoped(manager.run)
    yield* Effect.addFinalizer(() => manager.stop)
    if (options.watchJournal !== undefined) {
      const targetKey = options.config.targetKey
      let seen = (yield* store.getSyncState(targetKey)).lastEnqueuedSeq
      const check = Effect.flatMap(store.getSyncState(targetKey), (state) => {
        if (state.lastEnqueuedSeq === seen) return Effect.void
        seen = state.lastEnqueuedSeq
        return manager.notifyDirty
      }).pipe(Effect.catchAll(() => Effect.void))
      yield* Effect.forkScoped(Effect.repeat(check, Schedule.spaced(Duration.decode(options.watchJournal))))
    }
    return { store, documents: Context.get(context, Documents.Documents), manager }
  })
