/**
 * The rules of a sync server's log, written once. The in-process server of
 * `CloudTransport.makeMemoryServer` and every `MutationLog` of `@autosync/server` (memory, SQLite,
 * PostgreSQL) follow them; each backend brings only its storage.
 *
 * - Identity ({@link plan}): an entry whose `(clientId, clientSeq)` was stored before with the
 *   same content is a retry and gets its first seq back; with other content it is an
 *   {@link IdentityConflict} (409) and nothing of the batch is stored. The same `clientSeq` twice
 *   in one batch must carry the same content too. Payloads compare by their JSON text.
 * - Seqs ({@link plan}): the new entries of a batch get the seqs after the latest one, in batch
 *   order: strictly increasing and gap-free.
 * - Pages ({@link page}): the mutations after a cursor, of the allowed projects, less those
 *   `excludeClientId` pushed, in seq order; at most `limit`, `hasMore` when more follow;
 *   `latestSeq` is the last seq of the whole log, never behind the page.
 * - Policy ({@link forbidden}): a batch with a project the token may not use is refused whole.
 * - Long-poll ({@link awaitAbove}, {@link hold}): the log's latest seq is a `SubscriptionRef`; a
 *   held pull waits on its changes and reads again when it grows, until the page has something,
 *   the wait ends, or the server stops.
 *
 * {@link makeMemory} is these rules over an array: the log behind the in-process server and
 * `MutationLog.layerMemory`, and the reference the SQL logs are checked against.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { MutationEntry, PulledMutation, PullResponse } from "./Mutation.js"

// ----------------------------------------------------------------------------
// models
// ----------------------------------------------------------------------------

/**
 * The content of an entry that must match for a repeated `(clientId, clientSeq)` to count as a
 * retry: everything but the seqs, the payload as its JSON text (so key order is content too).
 *
 * @since 0.1.0
 * @category models
 */
export interface Content {
  readonly project: string
  readonly entity: string
  readonly entityKey: string
  readonly op: string
  readonly payloadJson: string
}

/**
 * A pushed entry as a log stores it: its payload as the JSON text `JSON.stringify` gave.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoredEntry extends Content {
  readonly clientSeq: number
}

/**
 * What a stored identity holds: its content and the seq it got.
 *
 * @since 0.1.0
 * @category models
 */
export interface Identity extends Content {
  readonly seq: number
}

/**
 * A mutation as a log stores it: the payload is its JSON text, `occurredAt` is in epoch
 * milliseconds.
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
 * A page of a log as stored: what a server answers pulls from, so a payload is never parsed,
 * checked and serialised again on its way out (it was checked when pushed).
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
 * What a batch stores: one seq per entry, in order, and the entries new to the log with the
 * seqs they get (a retry, or a repeat inside the batch, stores nothing).
 *
 * @since 0.1.0
 * @category models
 */
export interface Plan {
  readonly seqs: ReadonlyArray<number>
  readonly fresh: ReadonlyArray<StoredEntry & { readonly seq: number }>
}

/**
 * A `(clientId, clientSeq)` pushed before with other content (`seq` is the seq it got), or twice
 * in one batch with different content (no `seq`). The database was copied, or shares its
 * identity with another replica. Nothing of the batch is stored.
 *
 * @since 0.1.0
 * @category errors
 */
export class IdentityConflict extends Data.TaggedError("IdentityConflict")<{
  readonly clientId: string
  readonly clientSeq: number
  readonly seq: number | undefined
  readonly message: string
}> {}

// ----------------------------------------------------------------------------
// push
// ----------------------------------------------------------------------------

/**
 * The entries of a batch as they are stored: each payload as its JSON text.
 *
 * @since 0.1.0
 * @category constructors
 */
export const encodeEntries = (entries: ReadonlyArray<MutationEntry>): ReadonlyArray<StoredEntry> =>
  entries.map((entry) => ({
    clientSeq: entry.clientSeq,
    project: entry.project,
    entity: entry.entity,
    entityKey: entry.entityKey,
    op: entry.op,
    payloadJson: JSON.stringify(entry.payload)
  }))

/**
 * Whether two entries under one identity are the same write (a retry).
 *
 * @since 0.1.0
 * @category models
 */
export const sameContent = (a: Content, b: Content): boolean =>
  a.project === b.project && a.entity === b.entity && a.entityKey === b.entityKey && a.op === b.op &&
  a.payloadJson === b.payloadJson

/**
 * What a batch of `clientId` stores, given what each of its identities was stored with
 * (`storedAs`, `undefined` when new) and the log's latest seq: every entry's seq (a retry's
 * first one, new ones after `latestSeq` in batch order), or the first conflict.
 *
 * @since 0.1.0
 * @category constructors
 */
export const plan = (
  clientId: string,
  entries: ReadonlyArray<StoredEntry>,
  storedAs: (clientSeq: number) => Identity | undefined,
  latestSeq: number
): Either.Either<Plan, IdentityConflict> => {
  // Every identity is checked before a seq is given: a refused batch stores nothing.
  const inBatch = new Map<number, StoredEntry>()
  for (const entry of entries) {
    const twin = inBatch.get(entry.clientSeq)
    if (twin !== undefined && !sameContent(twin, entry)) {
      return Either.left(
        new IdentityConflict({
          clientId,
          clientSeq: entry.clientSeq,
          seq: undefined,
          message:
            `client_seq ${entry.clientSeq} of client ${clientId} appears twice in the batch with different content`
        })
      )
    }
    inBatch.set(entry.clientSeq, entry)
    const before = storedAs(entry.clientSeq)
    if (before !== undefined && !sameContent(before, entry)) {
      return Either.left(
        new IdentityConflict({
          clientId,
          clientSeq: entry.clientSeq,
          seq: before.seq,
          message:
            `client_seq ${entry.clientSeq} of client ${clientId} was already pushed with different content (server seq ${before.seq})`
        })
      )
    }
  }
  const given = new Map<number, number>()
  const fresh: Array<StoredEntry & { readonly seq: number }> = []
  const seqs = entries.map((entry) => {
    const known = given.get(entry.clientSeq) ?? storedAs(entry.clientSeq)?.seq
    if (known !== undefined) return known
    const seq = latestSeq + fresh.length + 1
    fresh.push({ ...entry, seq })
    given.set(entry.clientSeq, seq)
    return seq
  })
  return Either.right({ seqs, fresh })
}

/**
 * Why a batch is refused under a token's policy (`allowed`, every project when `undefined`): the
 * first project it may not use. A refused batch stores nothing.
 *
 * @since 0.1.0
 * @category constructors
 */
export const forbidden = (
  entries: ReadonlyArray<{ readonly project: string }>,
  allowed: ReadonlySet<string> | undefined
): Option.Option<string> => {
  const refused = allowed === undefined ? undefined : entries.find((entry) => !allowed.has(entry.project))
  return refused === undefined
    ? Option.none()
    : Option.some(`project ${JSON.stringify(refused.project)} is not allowed for this token`)
}

// ----------------------------------------------------------------------------
// pull
// ----------------------------------------------------------------------------

/**
 * A page from the candidates after a cursor (in seq order, already filtered by project and
 * `excludeClientId`; a SQL log asks for `limit + 1` of them): at most `limit`, `hasMore` when
 * one more exists, and `latestSeq` (read before the candidates) never behind the page.
 *
 * @since 0.1.0
 * @category constructors
 */
export const page = <A extends { readonly seq: number }>(
  candidates: Iterable<A>,
  limit: number,
  latestSeq: number
): { readonly mutations: ReadonlyArray<A>; readonly hasMore: boolean; readonly latestSeq: number } => {
  const mutations: Array<A> = []
  let hasMore = false
  for (const candidate of candidates) {
    if (mutations.length >= limit) {
      hasMore = true
      break
    }
    mutations.push(candidate)
  }
  const last = mutations.length > 0 ? mutations[mutations.length - 1].seq : 0
  return { mutations, hasMore, latestSeq: Math.max(latestSeq, last) }
}

/**
 * A stored mutation as pulled (its payload parsed).
 *
 * @since 0.1.0
 * @category constructors
 */
export const toPulled = (m: StoredMutation): PulledMutation => ({
  seq: m.seq,
  project: m.project,
  entity: m.entity,
  entityKey: m.entityKey,
  op: m.op,
  payload: JSON.parse(m.payloadJson),
  occurredAt: new Date(m.occurredAt)
})

/**
 * A stored page as a `PullResponse` (payloads parsed).
 *
 * @since 0.1.0
 * @category constructors
 */
export const toPullResponse = (stored: StoredPage): PullResponse => ({
  mutations: stored.mutations.map(toPulled),
  hasMore: stored.hasMore,
  latestSeq: stored.latestSeq
})

// ----------------------------------------------------------------------------
// long-poll
// ----------------------------------------------------------------------------

/**
 * Completes once `latest` (a log's latest seq) holds a value greater than `seq`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const awaitAbove = (latest: SubscriptionRef.SubscriptionRef<number>, seq: number): Effect.Effect<void> =>
  latest.changes.pipe(Stream.filter((n) => n > seq), Stream.take(1), Stream.runDrain)

/**
 * A held pull: reads the page; while it is empty, waits until the log holds a seq past the
 * page's `latestSeq` (`awaitAfter`) and reads again (the new seq may be another project's, or
 * the puller's own). Answers the last page read once it has something, once `wait` has passed,
 * once `stop` completes (a server shutting down), or when `awaitAfter` fails.
 *
 * @since 0.1.0
 * @category constructors
 */
export const hold = <P extends { readonly mutations: ReadonlyArray<unknown>; readonly latestSeq: number }, E, R>(
  read: Effect.Effect<P, E, R>,
  options: {
    readonly awaitAfter: (seq: number) => Effect.Effect<void, unknown>
    readonly wait: Duration.DurationInput
    readonly stop?: Effect.Effect<void> | undefined
  }
): Effect.Effect<P, E, R> =>
  Effect.gen(function*() {
    const first = yield* read
    if (first.mutations.length > 0) return first
    const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(Duration.decode(options.wait))
    const stopped = options.stop === undefined ? Effect.never : Effect.as(options.stop, false)
    const next = (current: P): Effect.Effect<P, E, R> =>
      Effect.gen(function*() {
        const remaining = deadline - (yield* Clock.currentTimeMillis)
        if (current.mutations.length > 0 || remaining <= 0) return current
        const woken = yield* options.awaitAfter(current.latestSeq).pipe(
          Effect.as(true),
          Effect.catchAll(() => Effect.succeed(false)),
          Effect.raceFirst(stopped),
          Effect.timeoutTo({ duration: Duration.millis(remaining), onSuccess: (b) => b, onTimeout: () => false })
        )
        return woken ? yield* next(yield* read) : current
      })
    return yield* next(first)
  })

// ----------------------------------------------------------------------------
// the reference log
// ----------------------------------------------------------------------------

/**
 * A log in memory, following these rules. Its reads are synchronous so tests can inspect it.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryLog {
  /** Stores a batch at the current time (`Clock`); one seq per entry, in order. */
  readonly append: (
    clientId: string,
    entries: ReadonlyArray<MutationEntry>
  ) => Effect.Effect<ReadonlyArray<number>, IdentityConflict>
  /** The page after `sinceSeq` of the `projects` (all when `undefined`), less `excludeClientId`'s writes. */
  readonly since: (
    sinceSeq: number,
    projects: ReadonlySet<string> | undefined,
    limit: number,
    excludeClientId?: string | undefined
  ) => Effect.Effect<StoredPage>
  /** Completes once the log holds a seq greater than `seq`. */
  readonly awaitAfter: (seq: number) => Effect.Effect<void>
  /** Every stored mutation, in seq order. */
  readonly mutations: () => ReadonlyArray<StoredMutation>
  /** The seq last assigned (0 when empty). */
  readonly latestSeq: () => number
}

interface MemoryRow {
  readonly clientId: string
  readonly mutation: StoredMutation
}

/**
 * A new, empty log in memory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<MemoryLog> = Effect.map(SubscriptionRef.make(0), (latest) => {
  // Seqs are gap-free from 1: the row of seq n is rows[n - 1].
  const rows: Array<MemoryRow> = []
  const byIdentity = new Map<string, StoredMutation>()
  const key = (clientId: string, clientSeq: number) => `${clientId}\u0000${clientSeq}`

  const append = (clientId: string, entries: ReadonlyArray<MutationEntry>) =>
    Effect.gen(function*() {
      const planned = yield* plan(
        clientId,
        encodeEntries(entries),
        (s) => byIdentity.get(key(clientId, s)),
        rows.length
      )
      const occurredAt = yield* Clock.currentTimeMillis
      for (const { clientSeq, ...content } of planned.fresh) {
        const mutation: StoredMutation = { ...content, occurredAt }
        rows.push({ clientId, mutation })
        byIdentity.set(key(clientId, clientSeq), mutation)
      }
      if (planned.fresh.length > 0) yield* SubscriptionRef.set(latest, rows.length)
      return planned.seqs
    })

  function* candidates(sinceSeq: number, projects: ReadonlySet<string> | undefined, excludeClientId?: string) {
    for (let i = Math.max(0, sinceSeq); i < rows.length; i++) {
      const { clientId, mutation } = rows[i]
      if (projects !== undefined && !projects.has(mutation.project)) continue
      if (clientId === excludeClientId) continue
      yield mutation
    }
  }

  return {
    append,
    since: (sinceSeq, projects, limit, excludeClientId) =>
      Effect.sync(() => page(candidates(sinceSeq, projects, excludeClientId), limit, rows.length)),
    awaitAfter: (seq) => awaitAbove(latest, seq),
    mutations: () => rows.map((row) => row.mutation),
    latestSeq: () => rows.length
  }
})
