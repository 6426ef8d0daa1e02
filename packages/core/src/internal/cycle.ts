/**
 * One sync cycle: skip when disabled (renewing the lease) or before `backoffUntil`; take the
 * lease, else skip; push the journal, then pull the server's log; then record the outcome in
 * the status and the store (on a failure, with the next backoff deadline).
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Backoff from "../Backoff.js"
import { LocalStoreError } from "../LocalStore.js"
import * as Status from "../Status.js"
import type { Lease } from "./lease.js"
import { ackPlan, afterCursor, groupByProject, pageProblem, toEntry } from "./plan.js"
import { endStreak, stepBackoff } from "./recovery.js"
import {
  type CycleFailure,
  cycleSeconds,
  describeFailure,
  failedTotal,
  lagSeqs,
  logged,
  now,
  pendingRows,
  pulledTotal,
  pushedTotal,
  type Shared,
  type StepFailure
} from "./shared.js"
import * as Watchdog from "./watchdog.js"

// A page the server sent that cannot be applied: it answered, so this is no outage to probe for.
class BadPage extends Schema.TaggedError<BadPage>()("BadPage", { message: Schema.String }) {}

/** Pushes pending rows, grouped by project; the projects that failed, with why. */
const push = (shared: Shared, lease: Lease) =>
  Effect.fn("SyncManager.push")(function*() {
    const { config: { pushBatchSize, targetKey }, store, transport } = shared
    const failed = new Map<string, StepFailure>()
    let highestAcked = 0
    // What was written before the cycle began; later writes wait for the next cycle (which is
    // due at once), so a replica that writes without pause still pulls.
    let highWater = (yield* store.getSyncState(targetKey)).lastEnqueuedSeq
    let firstPage = true
    while (true) {
      yield* lease.ensure
      const rows = yield* store.listPendingMutations(targetKey, pushBatchSize, { excludeProjects: [...failed.keys()] })
      if (rows.length === 0) break
      if (firstPage) highWater = Math.max(highWater, rows[rows.length - 1].seq)
      firstPage = false
      if (rows[0].seq > highWater) {
        yield* Queue.offer(shared.wake, undefined)
        break
      }
      // A row we acked in this cycle listed again means the store lost the ack: stop, never loop.
      if (rows[0].seq <= highestAcked) {
        return yield* new LocalStoreError({
          reason: "storage",
          message: `row ${rows[0].seq} is still pending after its ack`
        })
      }
      for (const group of groupByProject(rows)) {
        const project = group[0].project
        // Exact whenever read: acks only raise it, and new rows get higher seqs.
        const ackedThrough = yield* store.ackedThrough
        const result = yield* Effect.either(
          transport.push({ clientId: store.clientId, mutations: group.map(toEntry), ackedThrough })
        )
        if (Either.isLeft(result)) {
          failed.set(project, describeFailure(result.left))
          // The server asked us to slow down: no further request until its Retry-After.
          if (result.left.reason === "rate_limited") return [...failed.entries()]
          continue
        }
        yield* Watchdog.pushAnswered(shared.watchdog)
        const acks = ackPlan(group, result.right.acceptedSeqs)
        if (typeof acks === "string") {
          failed.set(project, { reasonCode: "transport_failed", message: acks })
          continue
        }
        yield* store.ackMutationSeqs(targetKey, acks)
        highestAcked = Math.max(highestAcked, group[group.length - 1].seq)
        yield* Metric.incrementBy(pushedTotal, group.length)
      }
    }
    return [...failed.entries()]
  })()

// The page the watcher brought, when it starts at `cursor` (else it is stale and dropped).
const takePrefetched = (shared: Shared, cursor: number) =>
  Ref.modify(shared.remote, (s) => [
    Option.getOrUndefined(Option.filter(s.prefetched, (p) => p.sinceSeq === cursor))?.page,
    { ...s, prefetched: Option.none() }
  ])

/** Pulls pages until `hasMore` is false, applying each in one transaction. */
const pull = (shared: Shared, lease: Lease) =>
  Effect.fn("SyncManager.pull")(function*() {
    const { config: { pullBatchSize, targetKey }, store, transport } = shared
    let cursor = (yield* store.getSyncState(targetKey)).lastPulledSeq
    while (true) {
      yield* lease.ensure
      // Our own writes are left out: they are in our tables already.
      const page = (yield* takePrefetched(shared, cursor)) ??
        (yield* transport.pull(cursor, pullBatchSize, { excludeClientId: store.clientId }))
      yield* Watchdog.pullAnswered(shared.watchdog, page.latestSeq)
      // Seqs at or below the cursor (a resent boundary seq) are skipped; a page with has_more
      // that brings nothing after the cursor is still a failure, never a hot loop.
      const mutations = afterCursor(cursor, page.mutations)
      const problem = pageProblem(cursor, mutations.map((m) => m.seq), page.hasMore)
      if (problem) return yield* new BadPage({ message: problem })
      // The last page holds everything up to latestSeq but our writes: the cursor moves there.
      const lastSeq = mutations.length > 0 ? mutations[mutations.length - 1].seq : cursor
      const throughSeq = page.hasMore || page.latestSeq < lastSeq ? undefined : page.latestSeq
      if (mutations.length > 0 || (throughSeq !== undefined && throughSeq > cursor)) {
        // One transaction per page; on a failure the store keeps the applied prefix and its cursor.
        yield* store.applyPulledMutations(targetKey, mutations, { throughSeq })
        cursor = lastSeq
        yield* Metric.incrementBy(pulledTotal, mutations.length)
      }
      // The store's cursor moved to throughSeq when there was one.
      yield* Metric.set(lagSeqs, Math.max(0, page.latestSeq - Math.max(cursor, throughSeq ?? 0)))
      if (!page.hasMore) return
    }
  })()

// With live sync, the watcher tells of every remote write: a cycle woken only by local writes
// pushes and skips the pull, unless the watcher brought news or a poll interval passed since
// the last pull (in case the watcher is down). Other cycles (`syncNow`, the poll, a retry, the
// first) always pull. Claims the pull when it is due.
const claimPull = ({ config, remote }: Shared, alwaysPull: boolean, at: number) =>
  Ref.modify(remote, (s) => {
    const due = Duration.toMillis(config.longPollWait) <= 0 || alwaysPull || s.newsPending ||
      at - s.lastPullAt >= Duration.toMillis(config.pollInterval)
    return due ? [true, { ...s, newsPending: false, lastPullAt: at }] : [false, s]
  })

/** Push then pull: the failure of the cycle, described (defects are caught by the caller). */
const pushThenPull = (shared: Shared, lease: Lease, alwaysPull: boolean) =>
  Effect.gen(function*() {
    yield* SubscriptionRef.update(shared.status, (s) => ({ ...s, phase: "pushing" as const }))
    const pushFailures = yield* push(shared, lease).pipe(
      Effect.catchTag("LocalStoreError", (e) => Effect.succeed([["", describeFailure(e)] as const]))
    )
    if (pushFailures.length > 0) {
      const reasonCode = pushFailures.map(([, f]) => f.reasonCode).reduce(Status.mostSpecific)
      const message = pushFailures.map(([project, f]) => project ? `${project}: ${f.message}` : f.message).join("; ")
      const unreachable = pushFailures.every(([, f]) => f.unreachable === true)
      const minimumDelay = Math.max(0, ...pushFailures.map(([, f]) => f.minimumDelay ?? 0))
      return { step: "push" as const, reasonCode, message, unreachable, minimumDelay }
    }
    if (!(yield* claimPull(shared, alwaysPull, yield* Clock.currentTimeMillis))) return undefined
    yield* SubscriptionRef.update(shared.status, (s) => ({ ...s, phase: "pulling" as const }))
    const failure = yield* pull(shared, lease).pipe(
      Effect.as(undefined),
      Effect.catchTags({
        BadPage: (e) => Effect.succeed<StepFailure>({ reasonCode: "transport_failed", message: e.message }),
        TransportError: (e) => Effect.succeed(describeFailure(e)),
        LocalStoreError: (e) => Effect.succeed(describeFailure(e))
      })
    )
    if (failure === undefined) return undefined
    yield* Ref.update(shared.remote, (s) => ({ ...s, newsPending: true })) // the retry pulls again
    return { step: "pull" as const, ...failure }
  })

// The watchdog's verdict on the cycle, from where the store says it ended (if the store cannot
// say, the stall shown stays as it was). A verdict other than the stored stall (another kind or
// start) is recorded: so a stall left in the file by an earlier process is cleared by this one's
// first cycle.
const endWatch = (shared: Shared, at: Date) =>
  Effect.gen(function*() {
    const { config: { targetKey }, store } = shared
    const state = yield* store.getSyncState(targetKey)
    const pending = (yield* store.listPendingMutations(targetKey, 1)).length > 0
    const cycleEnd = { ackedAfter: state.lastAckedSeq, cursorAfter: state.lastPulledSeq, pending }
    const stall = yield* Watchdog.end(shared, cycleEnd, at.getTime())
    if (!Watchdog.sameRun(state.stalled, stall)) yield* Watchdog.record(shared, stall)
    return stall
  }).pipe(Effect.orElse(() => Effect.map(SubscriptionRef.get(shared.status), (s) => s.stalled)))

/**
 * Records a cycle's outcome: the status, the metrics, and in the store either a cleared
 * failure or the failure with its backoff deadline (the next step of the failure streak's
 * `Backoff.schedule`, persisted so that a restarted process honours it; see `recovery.ts`).
 */
const recordOutcome = (shared: Shared, failure: CycleFailure | undefined, probed: boolean) =>
  Effect.gen(function*() {
    const { config, store, transport } = shared
    const { maxConsecutiveFailures, targetKey } = config
    yield* Ref.set(shared.probeArmed, failure?.unreachable === true && !probed)
    const at = yield* now
    const stall = yield* endWatch(shared, at)
    const previous = yield* SubscriptionRef.get(shared.status)
    if (failure === undefined) {
      const nonEnrolledPending = yield* store.skipAckNonEnrolledMutations(targetKey)
      // A durable write only when there is a failure to clear (it may be another process's).
      if (previous.consecutiveFailures > 0 || (yield* store.getSyncState(targetKey)).consecutiveFailures > 0) {
        yield* store.markHealthy(targetKey)
      }
      const next = Status.fromOutcome(previous, { _tag: "Synced", at, nonEnrolledPending }, maxConsecutiveFailures)
      yield* SubscriptionRef.set(shared.status, Watchdog.mark(next, stall))
      yield* endStreak(shared)
    } else {
      const stepped = yield* stepBackoff(shared, previous.consecutiveFailures, at)
      // At least what the server asked for (`Retry-After`), when it did.
      const wait = yield* Backoff.atLeast(Duration.millis(stepped.getTime() - at.getTime()), failure.minimumDelay)
      const backoffUntil = new Date(at.getTime() + Duration.toMillis(wait))
      const next = Status.fromOutcome(previous, { _tag: "Failed", ...failure, backoffUntil }, maxConsecutiveFailures)
      yield* SubscriptionRef.set(shared.status, Watchdog.mark(next, stall))
      yield* Metric.increment(failedTotal)
      yield* Effect.logWarning(
        `sync ${failure.step} failed (${failure.reasonCode}): ${failure.message}; retry at ${backoffUntil.toISOString()}`
      )
      yield* store.markFailure(targetKey, failure.message, backoffUntil, failure.reasonCode, transport.identity)
    }
    yield* Effect.flatMap(store.countPending(targetKey), (n) => Metric.set(pendingRows, n))
  })

/** What woke a cycle. */
export interface CycleOptions {
  /** Run even before `backoffUntil` (`syncNow`, or the server came back). */
  readonly force: boolean
  /** Only local writes woke it: with live sync it may skip its pull. */
  readonly localOnly: boolean
  /** The health probe woke it: a failure does not re-arm the probe. */
  readonly probed: boolean
}

/** One cycle, under the cycle lock. Never fails: a defect becomes a failed cycle. */
export const makeCycle = (shared: Shared, lease: Lease) => ({ force, localOnly, probed }: CycleOptions) =>
  shared.cycleLock.withPermits(1)(
    Effect.gen(function*() {
      yield* Queue.takeAll(shared.wake) // wakes up to now are served by this cycle
      const at = yield* now
      if (Option.isSome(yield* Ref.get(shared.disabled))) {
        yield* lease.acquire(at)
        return
      }
      const current = yield* SubscriptionRef.get(shared.status)
      if (!force && current.consecutiveFailures > 0 && current.backoffUntil && at < current.backoffUntil) return
      if (!(yield* lease.hold(at))) {
        yield* Effect.logDebug("lease held by another worker; cycle skipped")
        return
      }
      const started = yield* shared.store.getSyncState(shared.config.targetKey)
      yield* Watchdog.begin(shared.watchdog, started.lastAckedSeq, started.lastPulledSeq)
      yield* Effect.flatMap(
        pushThenPull(shared, lease, force || !localOnly),
        (failure) => recordOutcome(shared, failure, probed)
      ).pipe(
        Metric.trackDurationWith(cycleSeconds, Duration.toSeconds)
      )
    }).pipe(
      Effect.catchTag("LeaseLost", () => Effect.logInfo("lease lost to another worker mid-cycle")),
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.interrupt : Effect.gen(function*() {
          yield* Effect.logError("sync cycle failed with a defect", cause)
          const message = Cause.pretty(cause).split("\n")[0]
          yield* recordOutcome(shared, { step: "cycle", reasonCode: "internal_error", message }, false)
        }).pipe(Effect.catchAllCause((again) => Effect.logError("could not record the failed cycle", again)))
      ),
      Effect.withSpan("SyncManager.cycle"),
      logged(shared.config)
    )
  )
