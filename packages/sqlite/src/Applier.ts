/**
 * How a mutation reaches the application's tables: a registry from entity name to an
 * {@link EntityApplier}. The store calls an applier inside its own transaction, for a local
 * write (together with the journal row) and for a pulled mutation (together with the cursor),
 * so an applier's writes commit or roll back with them.
 *
 * The built-in applier, {@link documents}, keeps every entity in the `sync_documents` table
 * (ops `"upsert"` and `"delete"`). An entity without a registered applier falls back to it, as
 * in `LocalStore.layerMemory`.
 *
 * ```ts
 * const todos: Applier.EntityApplier = {
 *   validate: (write) => write.op === "toggle" ? undefined : `todos do not support ${write.op}`,
 *   apply: (change) =>
 *     Effect.flatMap(SqlClient.SqlClient, (sql) =>
 *       sql`UPDATE todos SET done = NOT done WHERE id = ${change.entityKey}`)
 * }
 * const StoreLive = SqliteLocalStore.layerFile("app.db").pipe(
 *   Layer.provide(Applier.register("todo", todos))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { LocalStore } from "@autosync/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Arr from "effect/Array"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Insert from "./internal/insert.js"

/**
 * What an applier is asked to check: a write before it is numbered, or a pulled mutation.
 *
 * @since 0.1.0
 * @category models
 */
export interface Write {
  readonly project: string
  readonly entity: string
  readonly entityKey: string
  readonly op: string
  readonly payload: unknown
}

/**
 * What an applier is asked to apply.
 *
 * @since 0.1.0
 * @category models
 */
export interface Change extends Write {
  readonly targetKey: string
  /** `"local"`: an application write being journaled; `"remote"`: a pulled mutation. */
  readonly source: "local" | "remote"
  /** The journal seq of a local write, the server seq of a pulled mutation. */
  readonly seq: number
}

/**
 * An applier refuses a change. For a local write the write fails with `invalid_input` and
 * nothing is written; a pulled mutation goes to the dead letters with `reason`.
 *
 * @since 0.1.0
 * @category errors
 */
export class ApplyRejected extends Schema.TaggedError<ApplyRejected>()("ApplyRejected", {
  reason: Schema.String
}) {}

/**
 * @since 0.1.0
 * @category models
 */
export interface EntityApplier {
  /**
   * Why a change cannot be applied, or `undefined`. Pure, checked before anything is written:
   * a local write is refused with `invalid_input`, a pulled mutation is dead-lettered even
   * when its key has an un-acked local write.
   */
  readonly validate: (write: Write) => string | undefined
  /**
   * Writes the change to the application's tables, inside the caller's transaction (use the
   * `SqlClient`; do not open connections of your own). Failing with {@link ApplyRejected}
   * rolls back this applier's writes only; any other failure rolls back the whole transaction.
   */
  readonly apply: (change: Change) => Effect.Effect<void, ApplyRejected | SqlError, SqlClient.SqlClient>
  /**
   * Optional: applies several changes, in order, with the same result as `apply` one by one,
   * in fewer statements (the store uses it for whole batches and pulled pages). On any failure
   * the store rolls it back and falls back to `apply`, one change at a time.
   */
  readonly applyMany?: (
    changes: ReadonlyArray<Change>
  ) => Effect.Effect<void, ApplyRejected | SqlError, SqlClient.SqlClient>
}

const upsertDocuments = Insert.make(
  "INSERT INTO sync_documents (project, entity, entity_key, value, updated_at)",
  5,
  "ON CONFLICT (project, entity, entity_key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)

/**
 * The built-in applier: the `sync_documents` table. `"upsert"` stores the payload as the
 * document (JSON text), `"delete"` removes it; any other op is refused.
 *
 * @since 0.1.0
 * @category appliers
 */
export const documents: EntityApplier = {
  validate: (write) => LocalStore.documentOpProblem(write.op, write.payload),
  apply: (change) =>
    Effect.gen(function*() {
      const problem = LocalStore.documentOpProblem(change.op, change.payload)
      if (problem !== undefined) return yield* new ApplyRejected({ reason: problem })
      const sql = yield* SqlClient.SqlClient
      if (change.op === "delete") {
        yield* sql`DELETE FROM sync_documents
          WHERE project = ${change.project} AND entity = ${change.entity} AND entity_key = ${change.entityKey}`
        return
      }
      const now = yield* Clock.currentTimeMillis
      yield* sql`INSERT INTO sync_documents (project, entity, entity_key, value, updated_at)
        VALUES (${change.project}, ${change.entity}, ${change.entityKey}, ${JSON.stringify(change.payload)}, ${now})
        ON CONFLICT (project, entity, entity_key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`
    }),
  // Only the last change of each key matters: one multi-row upsert, then the deletes.
  applyMany: (changes) =>
    Effect.gen(function*() {
      for (const change of changes) {
        const problem = LocalStore.documentOpProblem(change.op, change.payload)
        if (problem !== undefined) return yield* new ApplyRejected({ reason: problem })
      }
      const last = new Map<string, Change>()
      for (const change of changes) last.set(`${change.project}\u0000${change.entity}\u0000${change.entityKey}`, change)
      const sql = yield* SqlClient.SqlClient
      const now = yield* Clock.currentTimeMillis
      const upserts: Array<unknown> = []
      const deletes: Array<Change> = []
      for (const c of last.values()) {
        if (c.op === "delete") deletes.push(c)
        else upserts.push(c.project, c.entity, c.entityKey, JSON.stringify(c.payload), now)
      }
      yield* Insert.run(sql, upsertDocuments, upserts)
      for (const c of deletes) {
        yield* sql`DELETE FROM sync_documents
          WHERE project = ${c.project} AND entity = ${c.entity} AND entity_key = ${c.entityKey}`
      }
    })
}

/**
 * Applies changes in order through their appliers: consecutive changes with the same applier
 * go to its `applyMany` when it has one, else to `apply` one by one.
 *
 * @since 0.1.0
 * @category appliers
 */
export const applyAll = (
  registry: Registry,
  changes: ReadonlyArray<Change>
): Effect.Effect<void, ApplyRejected | SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    let start = 0
    while (start < changes.length) {
      const applier = registry.get(changes[start].entity)
      let end = start + 1
      while (end < changes.length && registry.get(changes[end].entity) === applier) end++
      const run = changes.slice(start, end)
      if (applier.applyMany) yield* applier.applyMany(run)
      else for (const change of run) yield* applier.apply(change)
      start = end
    }
  })

/**
 * Splits rows into chunks small enough for one multi-row statement.
 *
 * @since 0.1.0
 * @category appliers
 */
export const inChunks = <A>(items: ReadonlyArray<A>): ReadonlyArray<ReadonlyArray<A>> =>
  Arr.chunksOf(items, Insert.rowsPerStatement)

/**
 * The appliers by entity name.
 *
 * @since 0.1.0
 * @category models
 */
export interface Registry {
  readonly entities: ReadonlyMap<string, EntityApplier>
  /** The applier of an entity: the registered one, else {@link documents}. */
  readonly get: (entity: string) => EntityApplier
}

/**
 * A registry of these appliers, with {@link documents} for every other entity.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRegistry = (entities: ReadonlyMap<string, EntityApplier>): Registry => ({
  entities,
  get: (entity) => entities.get(entity) ?? documents
})

/**
 * The registry the SQLite store uses. A `Context.Reference`: without a layer, every entity
 * goes to the document table.
 *
 * @since 0.1.0
 * @category tags
 */
export class Applier extends Context.Reference<Applier>()("@autosync/sqlite/Applier", {
  defaultValue: (): Registry => makeRegistry(new Map())
}) {}

/**
 * Adds appliers to the registry (a later registration of the same entity wins).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (appliers: Readonly<Record<string, EntityApplier>>): Layer.Layer<Applier> =>
  Layer.effect(
    Applier,
    Effect.map(Applier, (current) => makeRegistry(new Map([...current.entities, ...Object.entries(appliers)])))
  )

/**
 * Registers the applier of one entity.
 *
 * @since 0.1.0
 * @category layers
 */
export const register = (entity: string, applier: EntityApplier): Layer.Layer<Applier> => layer({ [entity]: applier })
