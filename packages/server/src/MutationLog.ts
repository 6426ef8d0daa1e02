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
 * - `compact()` removes every row of which a newer row of its key exists (deletes stay as
 *   tombstones, payload dropped), in bounded transactions; `stats` tells the log's size and its
 *   last compaction, `size` its rows and latest seq alone (cheap enough for every scrape). An
 *   append's `ackedThrough` is the client's watermark: identities of
 *   compacted rows at or below it are forgotten, and a re-push at or below it that the log does
 *   not hold is a conflict (see `LogRules`).
 *
 * Seqs are strictly increasing and gap-free when assigned (compaction leaves holes), and a seq is
 * visible only when every smaller one is, so a puller that follows its cursor never skips one. The rules (identity, seqs, pages,
 * long-poll) are core's `LogRules`, written once: `layerMemory` is `LogRules.makeMemory` (the log
 * of core's in-process server too); `SqliteMutationLog` and `PgMutationLog` store the same rules
 * in SQL.
 *
 * @since 0.1.0
 */
import type { Mutation } from "@autosync/core"
import { LogRules } from "@autosync/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"

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
  /**
   * Stores a batch; one seq per entry, in order. Idempotent on `(clientId, clientSeq)`.
   * `ackedThrough` (the push's `acked_through`) raises the client's watermark once the batch is
   * planned.
   */
  readonly append: (
    clientId: string,
    entries: ReadonlyArray<Mutation.MutationEntry>,
    ackedThrough?: number | undefined
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
  /**
   * Removes the superseded rows, at most `batchSize` (default 1,000) per transaction, and makes
   * deletes tombstones. Appends and pulls run between its transactions.
   */
  readonly compact: (
    options?: { readonly batchSize?: number | undefined }
  ) => Effect.Effect<CompactionReport, MutationLogError>
  /** The log's size (rows, live keys, tombstones, superseded rows) and its last compaction. */
  readonly stats: Effect.Effect<LogStats, MutationLogError>
  /** The rows and latest seq of `stats`, without counting keys (for `/metrics` scrapes). */
  readonly size: Effect.Effect<LogSize, MutationLogError>
}>() {}

/**
 * What one compaction did (see `LogRules.CompactionReport`).
 *
 * @since 0.1.0
 * @category models
 */
export type CompactionReport = LogRules.CompactionReport

/**
 * The rows and latest seq of a log (see `LogRules.LogSize`).
 *
 * @since 0.1.0
 * @category models
 */
export type LogSize = LogRules.LogSize

/**
 * The size of a log (see `LogRules.LogStats`).
 *
 * @since 0.1.0
 * @category models
 */
export type LogStats = LogRules.LogStats

/**
 * A mutation as the log stores it (see `LogRules.StoredMutation`).
 *
 * @since 0.1.0
 * @category models
 */
export type StoredMutation = LogRules.StoredMutation

/**
 * A page of the log as stored (see `sinceStored`).
 *
 * @since 0.1.0
 * @category models
 */
export type StoredPage = LogRules.StoredPage

/**
 * A stored page as a `PullResponse` (payloads parsed): `LogRules.toPullResponse`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const toPullResponse: (page: StoredPage) => Mutation.PullResponse = LogRules.toPullResponse

/**
 * A conflict found by the rules, as the log's error.
 *
 * @since 0.1.0
 * @category errors
 */
export const fromConflict = (conflict: LogRules.IdentityConflict): MutationLogError =>
  new MutationLogError({
    reason: "conflict",
    message: conflict.message,
    ...(conflict.seq === undefined ? {} : { seq: conflict.seq })
  })

/**
 * A new, empty in-memory log: `LogRules.makeMemory`, the same log as core's in-process server.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<MutationLog["Type"]> = Effect.map(LogRules.makeMemory, (log) => {
  const sinceStored = (
    sinceSeq: number,
    projects: ReadonlyArray<string> | undefined,
    limit: number,
    excludeClientId?: string
  ) => log.since(sinceSeq, projects === undefined ? undefined : new Set(projects), limit, excludeClientId)
  return MutationLog.of({
    append: (clientId, entries, ackedThrough) =>
      Effect.mapError(log.append(clientId, entries, ackedThrough), fromConflict),
    since: (sinceSeq, projects, limit, excludeClientId) =>
      Effect.map(sinceStored(sinceSeq, projects, limit, excludeClientId), LogRules.toPullResponse),
    sinceStored,
    latestSeq: Effect.sync(log.latestSeq),
    awaitAfter: log.awaitAfter,
    compact: log.compact,
    stats: Effect.sync(log.stats),
    size: Effect.sync(log.size)
  })
})

/**
 * A `MutationLog` in memory, empty at start (for tests and examples).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<MutationLog> = Layer.effect(MutationLog, makeMemory)
