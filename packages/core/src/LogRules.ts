/**
 * The rules of a sync server's log, written once. The in-process server of
 * `CloudTransport.makeMemoryServer` and every `MutationLog` of `@autosync/server` (memory, SQLite,
 * PostgreSQL) follow them; each backend brings only its storage.
 *
 * - Identity ({@link plan}): an entry whose `(clientId, clientSeq)` was stored before with the
 *   same content is a retry and gets its first seq back; with other content it is an
 *   {@link IdentityConflict} (409) and nothing of the batch is stored. The same `clientSeq` twice
 *   in one batch must carry the same content too. Payloads compare by their JSON text, except a
 *   delete's: its content is its key and op ({@link sameContent}), so a tombstone whose payload
 *   compaction dropped still matches its retry.
 * - Watermark ({@link plan}): a push may carry `ackedThrough`, the client's promise that it never
 *   pushes a `clientSeq` at or below it again. The log keeps the highest one per client and
 *   forgets the identities of compacted rows at or below it; an entry at or below the watermark
 *   whose identity is not stored is an {@link IdentityConflict}: the client said it was acked,
 *   so it comes from a copy of the database or is a stale duplicate, and storing it under a new
 *   seq would resurrect an old write.
 * - Seqs ({@link plan}): the new entries of a batch get the seqs after the latest one, in batch
 *   order: strictly increasing, gap-free when assigned (compaction leaves holes later).
 * - Compaction ({@link compactable}): per `(project, entity, entityKey)` only the newest mutation
 *   is kept; a delete stays as a tombstone with its payload dropped (JSON `null`: a tombstone
 *   costs its key, op, seq, time and client identity, about 100 bytes plus the key). Tombstones
 *   are kept forever. The identities of removed rows above their client's watermark are kept, so
 *   a retry after compaction still gets its first seq and stores nothing.
 * - Pages ({@link page}): the mutations after a cursor, of the allowed projects, less those
 *   `excludeClientId` pushed, in seq order; at most `limit`, `hasMore` when more follow;
 *   `latestSeq` is the last seq of the whole log, never behind the page. After compaction a page
 *   has holes; a pull from 0 is a snapshot (one row per live key, plus tombstones). Since a row
 *   is removed only when a newer row of its key exists, no puller misses a key's newest version.
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
  // A delete is its key: its payload may have been dropped by compaction (a tombstone).
  (a.op === deleteOp || a.payloadJson === b.payloadJson)

/**
 * The op of a delete: compaction keeps it as a tombstone.
 *
 * @since 0.1.0
 * @category models
 */
export const deleteOp = "delete"

/**
 * A tombstone's payload, as stored: JSON `null`.
 *
 * @since 0.1.0
 * @category models
 */
export const tombstonePayload = "null"

/**
 * What a batch of `clientId` stores, given what each of its identities was stored with
 * (`storedAs`, `undefined` when new or forgotten), the log's latest seq and the client's
 * watermark (the highest `ackedThrough` it sent before, 0 when none): every entry's seq (a
 * retry's first one, new ones after `latestSeq` in batch order), or the first conflict.
 *
 * @since 0.1.0
 * @category constructors
 */
export const plan = (
  clientId: string,
  entries: ReadonlyArray<StoredEntry>,
  storedAs: (clientSeq: number) => Identity | undefined,
  latestSeq: number,
  watermark = 0
): Either.Either<Plan, IdentityConflict> => {
  // Every identity is checked before a seq is given: a refused batch stores nothing.
  const inBatch = new Map<number, StoredEntry>()
  for (const entry of entries) {
    if (entry.clientSeq <= watermark && storedAs(entry.clientSeq) === undefined) {
      return Either.left(
        new IdentityConflict({
          clientId,
          clientSeq: entry.clientSeq,
          seq: undefined,
          message: `client_seq ${entry.clientSeq} of client ${clientId} is at or below the acked_through ` +
            `${watermark} it sent before, but the server holds no such write (a copy of the database, or a stale duplicate)`
        })
      )
    }
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
// compaction
// ----------------------------------------------------------------------------

/**
 * What compaction knows of a row: its seq and its key.
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyedRow {
  readonly seq: number
  readonly project: string
  readonly entity: string
  readonly entityKey: string
}

/**
 * A row's key, as one string (for maps).
 *
 * @since 0.1.0
 * @category constructors
 */
export const keyOf = (row: Omit<KeyedRow, "seq">): string => JSON.stringify([row.project, row.entity, row.entityKey])

/**
 * The seqs compaction removes from `rows` (any order): every row of which a newer row of the
 * same key exists. This is the invariant pulls rely on: a row goes only when a newer one of its
 * key stays, so the newest version of every key survives, and a puller at any cursor still finds
 * it (or has it already). The SQL logs enforce the same rule with `EXISTS (a newer row)`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const compactable = (rows: Iterable<KeyedRow>): ReadonlySet<number> => {
  const newest = new Map<string, number>()
  const all: Array<KeyedRow> = []
  for (const row of rows) {
    all.push(row)
    const key = keyOf(row)
    newest.set(key, Math.max(newest.get(key) ?? 0, row.seq))
  }
  return new Set(all.filter((row) => row.seq < newest.get(keyOf(row))!).map((row) => row.seq))
}

/**
 * Whether an identity (of a removed row) is still kept: only above its client's watermark; at
 * or below it the client promised never to push it again.
 *
 * @since 0.1.0
 * @category constructors
 */
export const keepsIdentity = (clientSeq: number, watermark: number): boolean => clientSeq > watermark

/**
 * Rows one compaction transaction handles at most, so appends and pulls wait only that long.
 *
 * @since 0.1.0
 * @category models
 */
export const defaultCompactionBatch = 1000

/**
 * What one compaction did.
 *
 * @since 0.1.0
 * @category models
 */
export interface CompactionReport {
  /** Superseded rows removed. */
  readonly removed: number
  /** Deletes whose payload was dropped (now tombstones). */
  readonly tombstonesDropped: number
  /** Identities of removed rows kept for retries (their clients had not acked them). */
  readonly identitiesKept: number
  /** Wall time of the whole run, in milliseconds. */
  readonly durationMs: number
}

/**
 * The last compaction of a log (kept in the log's storage, so it survives restarts).
 *
 * @since 0.1.0
 * @category models
 */
export interface LastCompaction {
  /** When it finished, in epoch milliseconds. */
  readonly at: number
  readonly removed: number
  readonly durationMs: number
}

/**
 * The rows and latest seq of a log: what a `/metrics` scrape reads.
 *
 * @since 0.1.0
 * @category models
 */
export interface LogSize {
  /** Rows stored. */
  readonly rows: number
  /** The seq last assigned. */
  readonly latestSeq: number
}

/**
 * The size of a log and what a compaction would do to it. Counting keys reads every row: a
 * scrape reads the cheap `LogSize` instead.
 *
 * @since 0.1.0
 * @category models
 */
export interface LogStats extends LogSize {
  /** Keys whose newest row is not a delete. */
  readonly liveKeys: number
  /** Keys whose newest row is a delete. */
  readonly tombstones: number
  /** Rows that a compaction would remove (rows less keys). */
  readonly superseded: number
  /** Identities of removed rows kept for retries. */
  readonly identities: number
  /** The last compaction, if any ran. */
  readonly lastCompaction: LastCompaction | undefined
}

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
  /**
   * Stores a batch at the current time (`Clock`); one seq per entry, in order. `ackedThrough`
   * raises the client's watermark (after the batch is planned).
   */
  readonly append: (
    clientId: string,
    entries: ReadonlyArray<MutationEntry>,
    ackedThrough?: number | undefined
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
  /** Removes superseded rows, `batchSize` at a time (yielding between batches). */
  readonly compact: (options?: { readonly batchSize?: number | undefined }) => Effect.Effect<CompactionReport>
  /** The log's rows and latest seq (cheap: no keys counted). */
  readonly size: () => LogSize
  /** The log's size and what a compaction would remove. */
  readonly stats: () => LogStats
  /** Every stored mutation, in seq order. */
  readonly mutations: () => ReadonlyArray<StoredMutation>
  /** The seq last assigned (0 when empty). */
  readonly latestSeq: () => number
}

interface MemoryRow {
  readonly clientId: string
  readonly clientSeq: number
  mutation: StoredMutation
}

interface MemoryIdentity {
  readonly identity: Identity
  /** Its row is still in the log (else it was compacted and only the identity is kept). */
  live: boolean
}

/** The index of the first row with a seq greater than `seq` (rows are in seq order). */
const firstAfter = (rows: ReadonlyArray<{ readonly mutation: StoredMutation }>, seq: number): number => {
  let lo = 0
  let hi = rows.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (rows[mid].mutation.seq <= seq) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * A new, empty log in memory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<MemoryLog> = Effect.map(SubscriptionRef.make(0), (latest) => {
  // In seq order; after a compaction the seqs have holes.
  let rows: Array<MemoryRow> = []
  let last = 0
  let lastCompaction: LastCompaction | undefined
  const identities = new Map<string, Map<number, MemoryIdentity>>()
  const watermarks = new Map<string, number>()
  const identitiesOf = (clientId: string) => {
    const known = identities.get(clientId) ?? new Map<number, MemoryIdentity>()
    identities.set(clientId, known)
    return known
  }

  const raiseWatermark = (clientId: string, ackedThrough: number) => {
    const watermark = Math.max(watermarks.get(clientId) ?? 0, ackedThrough)
    watermarks.set(clientId, watermark)
    for (const [clientSeq, known] of identitiesOf(clientId)) {
      if (!known.live && !keepsIdentity(clientSeq, watermark)) identitiesOf(clientId).delete(clientSeq)
    }
  }

  const append = (clientId: string, entries: ReadonlyArray<MutationEntry>, ackedThrough?: number) =>
    Effect.gen(function*() {
      const known = identitiesOf(clientId)
      const planned = yield* plan(
        clientId,
        encodeEntries(entries),
        (s) => known.get(s)?.identity,
        last,
        watermarks.get(clientId) ?? 0
      )
      const occurredAt = yield* Clock.currentTimeMillis
      for (const { clientSeq, ...content } of planned.fresh) {
        const mutation: StoredMutation = { ...content, occurredAt }
        rows.push({ clientId, clientSeq, mutation })
        known.set(clientSeq, { identity: content, live: true })
        last = content.seq
      }
      if (ackedThrough !== undefined) raiseWatermark(clientId, ackedThrough)
      if (planned.fresh.length > 0) yield* SubscriptionRef.set(latest, last)
      return planned.seqs
    })

  function* candidates(sinceSeq: number, projects: ReadonlySet<string> | undefined, excludeClientId?: string) {
    for (let i = firstAfter(rows, sinceSeq); i < rows.length; i++) {
      const { clientId, mutation } = rows[i]
      if (projects !== undefined && !projects.has(mutation.project)) continue
      if (clientId === excludeClientId) continue
      yield mutation
    }
  }

  // One batch: the superseded rows after `after` (at most `batchSize`, up to `upTo`) removed,
  // the deletes in the same range made tombstones. Returns where the batch ended.
  const compactBatch = (
    after: number,
    upTo: number,
    batchSize: number,
    report: Omit<CompactionReport, "durationMs">
  ) => {
    const superseded = compactable(rows.map((row) => row.mutation))
    let end = upTo
    const removed = new Set<number>()
    for (let i = firstAfter(rows, after); i < rows.length && rows[i].mutation.seq <= upTo; i++) {
      const seq = rows[i].mutation.seq
      if (!superseded.has(seq)) continue
      removed.add(seq)
      if (removed.size >= batchSize) {
        end = seq
        break
      }
    }
    const kept: Array<MemoryRow> = []
    let { identitiesKept, tombstonesDropped } = report
    for (const row of rows) {
      const seq = row.mutation.seq
      if (removed.has(seq)) {
        const known = identitiesOf(row.clientId)
        if (keepsIdentity(row.clientSeq, watermarks.get(row.clientId) ?? 0)) {
          known.get(row.clientSeq)!.live = false
          identitiesKept++
        } else known.delete(row.clientSeq)
        continue
      }
      if (seq > after && seq <= end && row.mutation.op === deleteOp && row.mutation.payloadJson !== tombstonePayload) {
        row.mutation = { ...row.mutation, payloadJson: tombstonePayload }
        tombstonesDropped++
      }
      kept.push(row)
    }
    rows = kept
    return { end, report: { removed: report.removed + removed.size, identitiesKept, tombstonesDropped } }
  }

  const compact = (options?: { readonly batchSize?: number | undefined }) =>
    Effect.gen(function*() {
      const started = yield* Clock.currentTimeMillis
      const batchSize = Math.max(1, options?.batchSize ?? defaultCompactionBatch)
      const upTo = last
      let after = 0
      let report = { removed: 0, identitiesKept: 0, tombstonesDropped: 0 }
      while (after < upTo) {
        const next = compactBatch(after, upTo, batchSize, report)
        after = next.end
        report = next.report
        // Appends and pulls run between batches, as they do between the SQL logs' transactions.
        yield* Effect.yieldNow()
      }
      const at = yield* Clock.currentTimeMillis
      lastCompaction = { at, removed: report.removed, durationMs: at - started }
      return { ...report, durationMs: at - started }
    })

  const stats = (): LogStats => {
    const newest = new Map<string, StoredMutation>()
    for (const { mutation } of rows) newest.set(keyOf(mutation), mutation)
    let tombstones = 0
    for (const mutation of newest.values()) if (mutation.op === deleteOp) tombstones++
    let kept = 0
    for (const known of identities.values()) for (const identity of known.values()) if (!identity.live) kept++
    return {
      rows: rows.length,
      liveKeys: newest.size - tombstones,
      tombstones,
      superseded: rows.length - newest.size,
      latestSeq: last,
      identities: kept,
      lastCompaction
    }
  }

  return {
    append,
    since: (sinceSeq, projects, limit, excludeClientId) =>
      Effect.sync(() => page(candidates(sinceSeq, projects, excludeClientId), limit, last)),
    awaitAfter: (seq) => awaitAbove(latest, seq),
    compact,
    size: () => ({ rows: rows.length, latestSeq: last }),
    stats,
    mutations: () => rows.map((row) => row.mutation),
    latestSeq: () => last
  }
})
