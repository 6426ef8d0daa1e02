/**
 * The application's write API. Each write goes through `LocalStore.appendLocal`, which applies
 * it (the document row, or the entity's registered applier) and appends the journal row in one
 * transaction; after the commit, `DirtySignal.notify` wakes the sync managers of this process,
 * so the application never calls `notifyDirty` by hand.
 *
 * ```ts
 * const program = Effect.gen(function*() {
 *   const docs = yield* Documents.Documents
 *   yield* docs.put("notes", "note", "n1", { title: "hello" })
 *   const note = yield* docs.get("notes", "note", "n1") // Option.some({ title: "hello" })
 * })
 * ```
 *
 * Bad input (an empty project, a value that is not portable JSON, an op the entity's applier
 * refuses) fails with `LocalStoreError` reason `"invalid_input"` and writes nothing.
 *
 * @since 0.1.0
 */
import { DirtySignal, LocalStore, SyncConfig } from "@autosync/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/**
 * @since 0.1.0
 * @category tags
 */
export class Documents extends Context.Tag("@autosync/sqlite/Documents")<Documents, {
  /** Stores `value` (JSON) as the document; returns the journal seq of the write. */
  readonly put: (
    project: string,
    entity: string,
    key: string,
    value: unknown
  ) => Effect.Effect<number, LocalStore.LocalStoreError>
  /** Deletes the document (a `"delete"` write, journaled even when there was none); returns its seq. */
  readonly remove: (project: string, entity: string, key: string) => Effect.Effect<number, LocalStore.LocalStoreError>
  /** The document, if any. */
  readonly get: (
    project: string,
    entity: string,
    key: string
  ) => Effect.Effect<Option.Option<unknown>, LocalStore.LocalStoreError>
  /** The documents of a project (of one entity when given), ordered by entity then key. */
  readonly list: (
    project: string,
    entity?: string
  ) => Effect.Effect<ReadonlyArray<LocalStore.Document>, LocalStore.LocalStoreError>
}>() {}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The sync target the writes are journaled for. Defaults to `"cloud"`. */
  readonly targetKey?: string
}

/**
 * The write API over the `LocalStore` in context. Notifies the `DirtySignal` in context, if
 * any, after each committed write.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Documents["Type"], never, LocalStore.LocalStore> =>
  Effect.gen(function*() {
    const store = yield* LocalStore.LocalStore
    const signal = yield* Effect.serviceOption(DirtySignal.DirtySignal)
    const targetKey = options.targetKey ?? SyncConfig.defaults.targetKey
    const notify = Option.match(signal, { onNone: () => Effect.void, onSome: (s) => s.notify })

    const write = (project: string, entity: string, entityKey: string, op: string, payload: unknown) =>
      store.appendLocal(targetKey, [{ project, entity, entityKey, op, payload }]).pipe(
        Effect.map((seqs) => seqs[0]),
        Effect.tap(() => notify)
      )

    return Documents.of({
      put: (project, entity, key, value) =>
        write(project, entity, key, "upsert", value).pipe(Effect.withSpan("Documents.put")),
      remove: (project, entity, key) =>
        write(project, entity, key, "delete", null).pipe(Effect.withSpan("Documents.remove")),
      get: (project, entity, key) => store.getDocument(project, entity, key),
      list: (project, entity) => store.listDocuments(project, entity)
    })
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Documents, never, LocalStore.LocalStore> = Layer.effect(Documents, make())

/**
 * @since 0.1.0
 * @category layers
 */
export const layerWith = (options: Options): Layer.Layer<Documents, never, LocalStore.LocalStore> =>
  Layer.effect(Documents, make(options))
