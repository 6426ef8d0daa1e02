/**
 * A local replica as the commands open it: the SQLite file, its `LocalStore`, the `Documents`
 * write API and, for `agent` and `demo`, a running `SyncManager` against a server.
 *
 * @since 0.1.0
 */
import { DirtySignal, LocalStore, SyncConfig, SyncManager } from "@autosync/core"
import { HttpCloudTransport } from "@autosync/http"
import { Documents, SqliteLocalStore } from "@autosync/sqlite"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"

/**
 * The store and write API of a database file (created and migrated when missing).
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
    return { store, documents: Context.get(context, Documents.Documents), manager }
  })
