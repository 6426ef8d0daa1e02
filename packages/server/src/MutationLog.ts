/**
 * The server's log of mutations: the only place where server seqs are assigned.
 *
 * - `append(clientId, entries)` stores a batch and returns one seq per entry, in order. It is
 *   idempotent on `(clientId, clientSeq)`: an entry pushed before gets the seq it got the first
 *   time and is not stored again; one that comes back with different content fails with a
 *   `conflict` naming that seq, and then nothing of the batch is stored.
 * - `since(seq, projects, limit)` is a page of the log after `seq`, only the given projects, in
 *   seq order, with `hasMore` and the latest seq of the whole log. `sinceStored` is the same page
 *   as stored, each payload still its JSON text: what the server answers pulls from, so a payload
 *   is never parsed, checked again and re-serialised on its way out (it was checked when pushed).
 * - `awaitAfter(seq)` completes once the log holds a seq greater than `seq` (for long-polls).
 *
 * Seqs are strictly increasing and gap-free, and a seq is visible only when every smaller one is,
 * so a puller that follows its cursor never skips one. `layerMemory` is the reference
 * implementation; `SqliteMutationLog` and `PgMutationLog` store it in SQL.
 *
 * @since 0.1.0
 */
import type { Mutation } from "@autosync/core"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"

/**
 * A failed log operation.
 * - `conflict`: a `(clientId, clientSeq)` was already stored with different content (`seq` is
 *   the seq it got), or appears twice in one batch with different content. Nothing was stored.
 * - `storage`: the backing store failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class MutationLogError extends Schema.TaggedError<MutationLogError>()("MutationLogError", {
  reason: Schema.Literal("conflict", "storage"),
  message: Schema.String,
  seq: Schema.optionalWith(Schema.Number, { exact: true }),
  cause: Schema.optionalWith(Schema.Defect, { exact: true })
}) {}

/**
 * @since 0.1.0
 * @category tags
 */
export class MutationLog extends Context.Tag("@autosync/server/MutationLog")<MutationLog, {
  /** Stores a batch; one seq per entry, in order. Idempotent on `(clientId, clientSeq)`. */
  readonly append: (
    clientId: string,
    entries: ReadonlyArray<Mutation.MutationEntry>
  ) => Effect.Effect<ReadonlyArray<number>, MutationLogError>
  /**
   * At most `limit` mutations with a seq greater than `sinceSeq`, of the given projects (all
   * projects when `undefined`), in seq order, less those `excludeClientId` pushed. `latestSeq`
   * is the last seq of the whole log; when `hasMore` is false, the page holds every mutation up
   * to it that was not left out.
   */
  readonly since: (
    sinceSeq: number,
    projects: ReadonlyArray<string> | undefined,
    limit: number,
    excludeClientId?: string
  ) => Effect.Effect<Mutation.PullResponse, MutationLogError>
  /** The page of `since`, with each payload as the JSON text it was stored as. */
  readonly sinceStored: (
    sinceSeq: number,
    projects: ReadonlyArray<string> | undefined,
    limit: number,
    excludeClientId?: string
  ) => Effect.Effect<StoredPage, MutationLogError>
  /** The last seq assigned (0 when the log is empty). */
  readonly latestSeq: Effect.Effect<number, MutationLogError>
  /** Completes once the log holds a seq greater than `seq`. Interrupt it to stop waiting. */
  readonly awaitAfter: (seq: number) => Effect.Effect<void, MutationLogError>
}>() {}

/**
 * A mutation as the log stores it: the payload is its JSON text (as `JSON.stringify` gave it when
 * pushed), `occurredAt` is in epoch milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoredMutation {
  readonly seq: number
  readonly project: string
  readonly entity: string
  readonly entityKey: string
  readonly op: string
  readonly payloadJson: string
  readonly occurredAt: number
}

/**
 * A page of the log as stored (see `sinceStored`).
 *
 * @since 0.1.0
 * @category models
 */
export interface StoredPage {
  readonly mutations: ReadonlyArray<StoredMutation>
  readonly hasMore: boolean
  readonly latestSeq: number
}

/**
 * A stored page as a `PullResponse` (payloads parsed).
 *
 * @since 0.1.0
 * @category constructors
 */
export const toPullResponse = (page: StoredPage): Mutation.PullResponse => ({
  mutations: page.mutations.map((m): Mutation.PulledMutation => ({
    seq: m.seq,
    project: m.project,
    entity: m.entity,
    entityKey: m.entityKey,
    op: m.op,
    payload: JSON.parse(m.payloadJson),
    occurredAt: new Date(m.occurredAt)
  })),
  hasMore: page.hasMore,
  latestSeq: page.latestSeq
})

/**
 * The content of an entry that must match for a repeated `(clientId, clientSeq)` to count as a
 * retry: everything but the seq. Payloads compare by their JSON text.
 *
 * @since 0.1.0
 * @category models
 */
export const sameContent = (
  a: Pick<Mutation.MutationEntry, "project" | "entity" | "entityKey" | "op"> & { readonly payloadJson: string },
  b: Pick<Mutation.MutationEntry, "project" | "entity" | "entityKey" | "op"> & { readonly payloadJson: string }
): boolean =>
  a.project === b.project && a.entity === b.entity && a.entityKey === b.entityKey && a.op === b.op &&
  a.payloadJson === b.payloadJson

/**
 * The message of a `conflict` for an identity stored before.
 *
 * @since 0.1.0
 * @category errors
 */
export const conflictError = (clientId: string, clientSeq: number, seq: number): MutationLogError =>
  new MutationLogError({
    reason: "conflict",
    seq,
    message:
      `client_seq ${clientSeq} of client ${clientId} was already pushed with different content (server seq ${seq})`
  })

/**
 * Checks a batch against itself: the same `clientSeq` twice must carry the same content.
 *
 * @since 0.1.0
 * @category constructors
 */
export const checkBatch = (
  clientId: string,
  entries: ReadonlyArray<Mutation.MutationEntry>
): Effect.Effect<ReadonlyMap<number, string>, MutationLogError> =>
  Effect.suspend(() => {
    const seen = new Map<number, { readonly entry: Mutation.MutationEntry; readonly payloadJson: string }>()
    const payloads = new Map<number, string>()
    for (const entry of entries) {
      const payloadJson = JSON.stringify(entry.payload)
      const before = seen.get(entry.clientSeq)
      if (before && !sameContent({ ...before.entry, payloadJson: before.payloadJson }, { ...entry, payloadJson })) {
        return Effect.fail(
          new MutationLogError({
            reason: "conflict",
            message:
              `client_seq ${entry.clientSeq} of client ${clientId} appears twice in the batch with different content`
          })
        )
      }
      seen.set(entry.clientSeq, { entry, payloadJson })
      payloads.set(entry.clientSeq, payloadJson)
    }
    return Effect.succeed(payloads)
  })

/**
 * Completes once `latest` holds a value greater than `seq`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const awaitAbove = (latest: SubscriptionRef.SubscriptionRef<number>, seq: number): Effect.Effect<void> =>
  latest.changes.pipe(Stream.filter((n) => n > seq), Stream.take(1), Stream.runDrain)

interface Row {
  readonly clientId: string
  readonly clientSeq: number
  readonly payloadJson: string
  readonly mutation: Mutation.PulledMutation
}

/**
 * A new, empty in-memory log.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<MutationLog["Type"]> = Effect.gen(function*() {
  const log: Array<Row> = []
  const byIdentity = new Map<string, Row>()
  const latest = yield* SubscriptionRef.make(0)
  const key = (clientId: string, clientSeq: number) => `${clientId}\u0000${clientSeq}`

  const append = (clientId: string, entries: ReadonlyArray<Mutation.MutationEntry>) =>
    Effect.gen(function*() {
      const payloads = yield* checkBatch(clientId, entries)
      for (const entry of entries) {
        const existing = byIdentity.get(key(clientId, entry.clientSeq))
        const payloadJson = payloads.get(entry.clientSeq)!
        if (
          existing &&
          !sameContent({ ...existing.mutation, payloadJson: existing.payloadJson }, { ...entry, payloadJson })
        ) {
          return yield* conflictError(clientId, entry.clientSeq, existing.mutation.seq)
        }
      }
      const occurredAt = new Date(yield* Clock.currentTimeMillis)
      const seqs = entries.map((entry) => {
        const existing = byIdentity.get(key(clientId, entry.clientSeq))
        if (existing) return existing.mutation.seq
        // Payloads are stored as JSON text, as the SQL logs do: the page holds a copy.
        const payloadJson = payloads.get(entry.clientSeq)!
        const row: Row = {
          clientId,
          clientSeq: entry.clientSeq,
          payloadJson,
          mutation: {
            seq: log.length + 1,
            project: entry.project,
            entity: entry.entity,
            entityKey: entry.entityKey,
            op: entry.op,
            payload: JSON.parse(payloadJson),
            occurredAt
          }
        }
        log.push(row)
        byIdentity.set(key(clientId, entry.clientSeq), row)
        return row.mutation.seq
      })
      yield* SubscriptionRef.set(latest, log.length)
      return seqs
    })

  const sinceStored = (
    sinceSeq: number,
    projects: ReadonlyArray<string> | undefined,
    limit: number,
    excludeClientId?: string
  ) =>
    Effect.sync((): StoredPage => {
      const allowed = projects === undefined ? undefined : new Set(projects)
      const mutations: Array<StoredMutation> = []
      let hasMore = false
      for (let i = Math.max(0, sinceSeq); i < log.length; i++) {
        const row = log[i]
        if (allowed !== undefined && !allowed.has(row.mutation.project)) continue
        if (row.clientId === excludeClientId) continue
        if (mutations.length === limit) {
          hasMore = true
          break
        }
        const { entity, entityKey, occurredAt, op, project, seq } = row.mutation
        mutations.push({
          seq,
          project,
          entity,
          entityKey,
          op,
          payloadJson: row.payloadJson,
          occurredAt: occurredAt.getTime()
        })
      }
      return { mutations, hasMore, latestSeq: log.length }
    })

  return MutationLog.of({
    append,
    since: (sinceSeq, projects, limit, excludeClientId) =>
      Effect.map(sinceStored(sinceSeq, projects, limit, excludeClientId), toPullResponse),
    sinceStored,
    latestSeq: Effect.sync(() => log.length),
    awaitAfter: (seq) => awaitAbove(latest, seq)
  })
})

/**
 * A `MutationLog` in memory, empty at start (for tests and examples).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<MutationLog> = Layer.effect(MutationLog, makeMemory)
