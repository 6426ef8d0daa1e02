/**
 * The background sync manager: one loop per replica that waits for work, takes the lease,
 * pushes the journal, pulls the server's log, and publishes its status.
 *
 * ```
 *  run ──▶ restore persisted backoff ──▶ cycle ──▶ wait for work ──▶ cycle ──▶ …
 *
 *  wait for work = first of
 *    · a wake (notifyDirty / DirtySignal), then `debounce` of quiet (capped by `debounceMaxWait`)
 *    · with `longPollWait`: news from the watcher, a pull held open on the server
 *    · `pollInterval` since the last cycle (while disabled: half the lease interval, to renew it)
 *    · while failing: nothing but `backoffUntil`
 *
 *  cycle = skip if disabled (renew the lease) or before backoffUntil
 *        → lease (else skip) → push groups by project → ack accepted seqs
 *        → pull pages until has_more is false (with longPollWait: only on news from the watcher,
 *          on syncNow, or once a poll interval passed) → healthy | push_failed | pull_failed | backoff
 * ```
 *
 * A defect inside a cycle never kills the loop: the phase becomes `backoff` with reason
 * `internal_error` and the cycle is retried at its deadline. Retries never give up for good.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Backoff from "./Backoff.js"
import { CloudTransport, TransportError } from "./CloudTransport.js"
import { DirtySignal } from "./DirtySignal.js"
import { ackPlan, afterCursor, groupByProject, pageProblem, toEntry } from "./internal/plan.js"
import { LocalStore, LocalStoreError } from "./LocalStore.js"
import type { PullResponse } from "./Mutation.js"
import * as Status from "./Status.js"
import type { Input as SyncConfigInput, SyncConfig } from "./SyncConfig.js"
import { fromEnv } from "./SyncConfig.js"

/**
 * `stopForUpgrade` / `resumeAfterUpgrade` were given an empty project.
 *
 * @since 0.1.0
 * @category errors
 */
export class UpgradeError extends Schema.TaggedError<UpgradeError>()("UpgradeError", {
  message: Schema.String
}) {}

/**
 * @since 0.1.0
 * @category tags
 */
export class SyncManager extends Context.Tag("@autosync/core/SyncManager")<SyncManager, {
  /** Signals local changes. Never blocks; calls inside the debounce window coalesce into one cycle. */
  readonly notifyDirty: Effect.Effect<void>
  /** The current status. */
  readonly status: Effect.Effect<Status.Status>
  /** The current status, then every change, in order. */
  readonly changes: Stream.Stream<Status.Status>
  /** The loop. Returns when stopped or interrupted, releasing the lease; a second concurrent `run` returns at once. */
  readonly run: Effect.Effect<void>
  /** Ends `run` and waits for it. Harmless when not running. */
  readonly stop: Effect.Effect<void>
  /** Phase `disabled`, reason `paused`: no further cycles, the lease is kept (and renewed). */
  readonly stopForUpgrade: (project: string) => Effect.Effect<void, UpgradeError>
  /** Back to `idle` and a wake. A no-op when not disabled. */
  readonly resumeAfterUpgrade: (project: string) => Effect.Effect<void, UpgradeError>
  /** One cycle now (even before `backoffUntil`), then the status. For CLIs and tests. */
  readonly syncNow: Effect.Effect<Status.Status>
}>() {}

/**
 * Rows pushed, acked by the server.
 *
 * @since 0.1.0
 * @category metrics
 */
export const pushedTotal = Metric.counter("autosync_pushed_total", { description: "local rows pushed and acked" })
/**
 * Mutations pulled and handed to the local store.
 *
 * @since 0.1.0
 * @category metrics
 */
export const pulledTotal = Metric.counter("autosync_pulled_total", { description: "remote mutations pulled" })
/**
 * Failed cycles.
 *
 * @since 0.1.0
 * @category metrics
 */
export const failedTotal = Metric.counter("autosync_failed_cycles_total", { description: "failed sync cycles" })
/**
 * Local rows waiting to be pushed, after the last cycle.
 *
 * @since 0.1.0
 * @category metrics
 */
export const pendingRows = Metric.gauge("autosync_pending_rows", { description: "local rows not yet acked" })

/**
 * How often the manager probes the server's health while it backs off after the server could
 * not be reached (jittered by ±20 %, so 2.4–3.6 s), and the shortest wait worth probing in:
 * a retry deadline closer than this is simply waited for.
 *
 * @since 0.1.0
 * @category models
 */
export const probeInterval: Duration.Duration = Duration.seconds(3)

// A failure of one step, classified for the status. `unreachable`: the server did not answer
// at all (no HTTP status), so its return is worth probing for.
type StepFailure = {
  readonly reasonCode: Status.ReasonCode
  readonly message: string
  readonly unreachable?: boolean
}

const classify = (error: TransportError | LocalStoreError): StepFailure =>
  error._tag === "LocalStoreError"
    ? { reasonCode: "internal_error", message: `local store: ${error.message}` }
    : error.reason === "identity_conflict"
    ? { reasonCode: error.reason, message: `${error.message}: ${Status.identityConflictHint}` }
    : {
      reasonCode: error.reason,
      message: error.message,
      unreachable: error.reason === "transport_failed" && error.status === undefined
    }

// A page the server sent that cannot be applied: it answered, so this is no outage to probe for.
class BadPage extends Schema.TaggedError<BadPage>()("BadPage", { message: Schema.String }) {}

// A wait of about `interval`, jittered by ±20 % from Effect's `Random`.
const jittered = (interval: Duration.Duration) =>
  Effect.flatMap(
    Effect.randomWith((r) => r.nextRange(0.8, 1.2)),
    (f) => Effect.sleep(Duration.millis(Math.round(Duration.toMillis(interval) * f)))
  )

// Another worker took the lease mid-cycle: end the cycle quietly, it is that worker's turn.
class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", {}) {}

const validateProject = (project: string) =>
  project.trim().length === 0
    ? Effect.fail(new UpgradeError({ message: "project must not be empty" }))
    : Effect.void

/**
 * Builds a manager. It does nothing until `run` (or `syncNow`). When a `DirtySignal` is in the
 * context, `run` also wakes on it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  config: SyncConfig
): Effect.Effect<SyncManager["Type"], never, LocalStore | CloudTransport> =>
  Effect.gen(function*() {
    const store = yield* LocalStore
    const transport = yield* CloudTransport
    const signal = yield* Effect.serviceOption(DirtySignal)
    const statusRef = yield* SubscriptionRef.make<Status.Status>(Status.initial)
    const wake = yield* Queue.sliding<void>(1)
    const remoteNews = yield* Queue.sliding<void>(1)
    const disabled = yield* Ref.make(Option.none<string>())
    const running = yield* Ref.make(Option.none<{ stop: Deferred.Deferred<void>; done: Deferred.Deferred<void> }>())
    const cycleLock = yield* Effect.makeSemaphore(1)
    const { leaseOwner, targetKey } = config
    const backoffOptions = { base: config.baseBackoff, max: config.maxBackoff }

    const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms))
    const setPhase = (phase: Status.Phase) => SubscriptionRef.update(statusRef, (s) => ({ ...s, phase }))
    const logged = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.annotateLogs(effect, { package: "@autosync/core", module: "SyncManager", targetKey, leaseOwner })

    // Fenced writes: every batch and page first renews the lease, and stops if it was lost.
    // The lease is ours until `heldUntil`; nobody can take it before then, so within a cycle it is
    // renewed only once less than half of it is left (each renewal is a durable write).
    let heldUntil = 0
    const leaseTtl = Duration.toMillis(config.leaseInterval)
    const acquireLease = (at: Date) =>
      Effect.tap(store.acquireLease(targetKey, leaseOwner, config.leaseInterval, at), (held) => {
        heldUntil = held ? at.getTime() + leaseTtl : 0
      })
    const ensureLease = Effect.flatMap(now, (at) =>
      heldUntil - at.getTime() > leaseTtl / 2
        ? Effect.void
        : Effect.flatMap(acquireLease(at), (held) => held ? Effect.void : Effect.fail(new LeaseLost())))

    const push = Effect.fn("SyncManager.push")(function*() {
      const failed = new Map<string, StepFailure>()
      let highestAcked = 0
      // What was written before the cycle began; later writes wait for the next cycle (which is
      // due at once), so a replica that writes without pause still pulls.
      let highWater = (yield* store.getSyncState(targetKey)).lastEnqueuedSeq
      let firstPage = true
      while (true) {
        yield* ensureLease
        const rows = yield* store.listPendingMutations(targetKey, config.pushBatchSize, {
          excludeProjects: [...failed.keys()]
        })
        if (rows.length === 0) break
        if (firstPage) highWater = Math.max(highWater, rows[rows.length - 1].seq)
        firstPage = false
        if (rows[0].seq > highWater) {
          yield* Queue.offer(wake, undefined)
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
          const result = yield* Effect.either(
            transport.push({ clientId: store.clientId, mutations: group.map(toEntry) })
          )
          if (Either.isLeft(result)) {
            failed.set(project, classify(result.left))
            continue
          }
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
    })

    // A page the long-poll watcher brought back: the next cycle applies it instead of asking the
    // server again, when it starts where the cycle's cursor is (else it is stale and dropped).
    let prefetched: { readonly sinceSeq: number; readonly page: PullResponse } | undefined
    const takePrefetched = (cursor: number) => {
      const taken = prefetched?.sinceSeq === cursor ? prefetched.page : undefined
      prefetched = undefined
      return taken
    }

    const pull = Effect.fn("SyncManager.pull")(function*() {
      let cursor = (yield* store.getSyncState(targetKey)).lastPulledSeq
      while (true) {
        yield* ensureLease
        // Our own writes are left out: they are in our tables already.
        const page = takePrefetched(cursor) ??
          (yield* transport.pull(cursor, config.pullBatchSize, { excludeClientId: store.clientId }))
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
        if (!page.hasMore) return
      }
    })

    // Push then pull; the outcome of the cycle, failures classified (defects are caught by the caller).
    // With live sync, the watcher tells of every remote write: a cycle woken only by local
    // writes pushes and skips the pull, unless the watcher brought news or a poll interval passed
    // since the last pull (in case the watcher is down). Other cycles (`syncNow`, the poll, a
    // retry, the first) always pull.
    const live = Duration.toMillis(config.longPollWait) > 0
    let remoteNewsPending = true
    let lastPullAt = Number.NEGATIVE_INFINITY
    const pullDue = (alwaysPull: boolean, at: number) =>
      !live || alwaysPull || remoteNewsPending || at - lastPullAt >= Duration.toMillis(config.pollInterval)

    const pushThenPull = (alwaysPull: boolean) =>
      Effect.gen(function*() {
        yield* setPhase("pushing")
        const pushFailures = yield* push().pipe(
          Effect.catchTag("LocalStoreError", (e) => Effect.succeed([["", classify(e)] as const]))
        )
        if (pushFailures.length > 0) {
          const reasonCode = pushFailures.map(([, f]) => f.reasonCode).reduce(Status.mostSpecific)
          const message = pushFailures.map(([project, f]) => project ? `${project}: ${f.message}` : f.message)
            .join("; ")
          const unreachable = pushFailures.every(([, f]) => f.unreachable === true)
          return { step: "push" as const, reasonCode, message, unreachable }
        }
        const at = yield* Clock.currentTimeMillis
        if (!pullDue(alwaysPull, at)) return undefined
        remoteNewsPending = false
        lastPullAt = at
        yield* setPhase("pulling")
        return yield* pull().pipe(
          Effect.as(undefined),
          Effect.catchTags({
            BadPage: (e) => Effect.succeed<StepFailure>({ reasonCode: "transport_failed", message: e.message }),
            TransportError: (e) => Effect.succeed(classify(e)),
            LocalStoreError: (e) => Effect.succeed(classify(e))
          }),
          Effect.map((failure) => {
            if (failure === undefined) return undefined
            remoteNewsPending = true // the retry pulls again
            return { step: "pull" as const, ...failure }
          })
        )
      })

    // Armed by a failure to reach the server: the backoff wait then probes its health (see
    // `waitOutBackoff`). Not re-armed by a failure of a cycle the probe itself woke (the server
    // answers its health but not sync): that retry waits out its backoff, so a half-up server
    // sees at most one extra cycle per backoff period.
    let probeArmed = false

    const settle = (failure: { step: "push" | "pull" | "cycle" } & StepFailure | undefined, probed = false) =>
      Effect.gen(function*() {
        probeArmed = failure?.unreachable === true && !probed
        const at = yield* now
        const previous = yield* SubscriptionRef.get(statusRef)
        if (failure === undefined) {
          const nonEnrolledPending = yield* store.skipAckNonEnrolledMutations(targetKey)
          // A durable write only when there is a failure to clear (it may be another process's).
          if (previous.consecutiveFailures > 0 || (yield* store.getSyncState(targetKey)).consecutiveFailures > 0) {
            yield* store.markHealthy(targetKey)
          }
          yield* SubscriptionRef.set(
            statusRef,
            Status.fromOutcome(previous, { _tag: "Synced", at, nonEnrolledPending }, config.maxConsecutiveFailures)
          )
        } else {
          const wait = yield* Backoff.delay(previous.consecutiveFailures + 1, backoffOptions)
          const backoffUntil = new Date(at.getTime() + Duration.toMillis(wait))
          yield* SubscriptionRef.set(
            statusRef,
            Status.fromOutcome(previous, { _tag: "Failed", ...failure, backoffUntil }, config.maxConsecutiveFailures)
          )
          yield* Metric.increment(failedTotal)
          yield* Effect.logWarning(
            `sync ${failure.step} failed (${failure.reasonCode}): ${failure.message}; retry at ${backoffUntil.toISOString()}`
          )
          yield* store.markFailure(targetKey, failure.message, backoffUntil, failure.reasonCode, transport.identity)
        }
        yield* Effect.flatMap(store.countPending(targetKey), (n) => Metric.set(pendingRows, n))
      })

    const cycle = (force: boolean, localOnly: boolean, probed = false) =>
      cycleLock.withPermits(1)(
        Effect.gen(function*() {
          yield* Queue.takeAll(wake) // wakes up to now are served by this cycle
          const at = yield* now
          if (Option.isSome(yield* Ref.get(disabled))) {
            yield* acquireLease(at)
            return
          }
          const current = yield* SubscriptionRef.get(statusRef)
          if (!force && current.consecutiveFailures > 0 && current.backoffUntil && at < current.backoffUntil) return
          const held = heldUntil - at.getTime() > leaseTtl / 2 || (yield* acquireLease(at))
          if (!held) {
            yield* Effect.logDebug("lease held by another worker; cycle skipped")
            return
          }
          const failure = yield* pushThenPull(force || !localOnly)
          yield* settle(failure, probed)
        }).pipe(
          Effect.catchTag("LeaseLost", () => Effect.logInfo("lease lost to another worker mid-cycle")),
          Effect.catchAllCause((cause) =>
            Cause.isInterruptedOnly(cause) ? Effect.interrupt : Effect.gen(function*() {
              yield* Effect.logError("sync cycle failed with a defect", cause)
              yield* settle({
                step: "cycle",
                reasonCode: "internal_error",
                message: Cause.pretty(cause).split("\n")[0]
              })
            }).pipe(Effect.catchAllCause((again) => Effect.logError("could not record the failed cycle", again)))
          ),
          Effect.withSpan("SyncManager.cycle"),
          logged
        )
      )

    // A wake, then quiet for `debounce` (each wake restarts it), but never longer than `debounceMaxWait`.
    const debounced = Effect.gen(function*() {
      yield* Queue.take(wake)
      const start = yield* Clock.currentTimeMillis
      const debounce = Duration.toMillis(config.debounce)
      const maxWait = Duration.toMillis(config.debounceMaxWait)
      while (true) {
        const remaining = Math.min(debounce, maxWait - ((yield* Clock.currentTimeMillis) - start))
        if (remaining <= 0) return
        const again = yield* Effect.timeoutOption(Queue.take(wake), Duration.millis(remaining))
        if (Option.isNone(again)) return
      }
    })

    // Recovery after an outage: while backing off after the server could not be reached, probe
    // its health every ~3 s (jittered, one request at a time) and, on the first answer, end the
    // wait: the next cycle runs at once instead of at a deadline that may be minutes away. Live
    // sync's watcher reconnecting tells the same. Other reasons wait out their deadline: health
    // says nothing about a token (401/403) or an identity conflict.
    const serverBack = yield* Queue.sliding<void>(1)
    const probeUntilUp = (health: Effect.Effect<void, TransportError>) =>
      Effect.zipRight(
        jittered(probeInterval),
        // The schedule never ends: the probe fails only by being interrupted.
        Effect.retry(health, Schedule.jittered(Schedule.spaced(probeInterval))).pipe(
          Effect.catchAll(() => Effect.never)
        )
      )
    // Sleeps until the deadline; `true` when the server came back first.
    const waitOutBackoff = (left: number) => {
      const sleep = Effect.as(Effect.sleep(Duration.millis(left)), false)
      if (!probeArmed || left <= Duration.toMillis(probeInterval)) return sleep
      return Effect.zipRight(
        Queue.takeAll(serverBack),
        Effect.raceAll([
          sleep,
          Effect.as(Queue.take(serverBack), true),
          ...(transport.health === undefined ? [] : [Effect.as(probeUntilUp(transport.health), true)])
        ])
      ).pipe(
        Effect.tap((back) =>
          back ? Effect.logInfo("the server answers again: retrying before the deadline") : Effect.void
        )
      )
    }

    // "local": only local writes woke it (the cycle may then skip its pull, see `pullDue`);
    // "recovered": the server came back during a backoff (the cycle runs before the deadline).
    const waitForWork: Effect.Effect<"local" | "other" | "recovered"> = Effect.gen(function*() {
      const current = yield* SubscriptionRef.get(statusRef)
      const at = yield* Clock.currentTimeMillis
      const isDisabled = Option.isSome(yield* Ref.get(disabled))
      if (!isDisabled && current.consecutiveFailures > 0 && current.backoffUntil) {
        const left = current.backoffUntil.getTime() - at
        if (left > 0) return (yield* waitOutBackoff(left)) ? "recovered" as const : "other" as const
      }
      const timer = isDisabled
        ? Duration.min(config.pollInterval, Duration.unsafeDivide(config.leaseInterval, 2))
        : config.pollInterval
      return yield* Effect.raceAll([
        Effect.as(debounced, "local" as const),
        Effect.as(Effect.sleep(timer), "other" as const),
        Effect.as(Queue.take(remoteNews), "other" as const)
      ])
    })

    // Live sync: a pull held open on the server; news wakes the loop at once (no debounce: the
    // remote writer already debounced). The watcher only fetches: the cycle applies its page,
    // under the lease.
    const watchRemote = Effect.gen(function*() {
      const wait = Duration.toMillis(config.longPollWait)
      let seen = 0
      while (true) {
        const started = yield* Clock.currentTimeMillis
        const cursor = Math.max(seen, (yield* store.getSyncState(targetKey)).lastPulledSeq)
        const page = yield* transport.pull(cursor, config.pullBatchSize, {
          wait: config.longPollWait,
          excludeClientId: store.clientId
        }).pipe(Effect.tapError(() => Effect.sync(() => watcherFailed = true)))
        if (watcherFailed) {
          watcherFailed = false
          yield* Queue.offer(serverBack, undefined)
        }
        if (page.mutations.length > 0) {
          seen = Math.max(cursor, page.latestSeq, page.mutations[page.mutations.length - 1].seq)
          prefetched = { sinceSeq: cursor, page }
          remoteNewsPending = true
          yield* Queue.offer(remoteNews, undefined)
        } else {
          // A server that answers before the wait is over (or ignores it) must not make us spin.
          const early = wait - ((yield* Clock.currentTimeMillis) - started)
          if (early > 0) yield* Effect.sleep(Duration.millis(early))
        }
      }
    }).pipe(
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.interrupt : Effect.logDebug("long-poll failed", cause)
      ),
      // Reconnects jittered, so agents that lost one server do not come back in step.
      Effect.zipRight(jittered(Duration.max(config.baseBackoff, probeInterval))),
      Effect.forever,
      logged
    )
    let watcherFailed = false

    // A restarted process honours the deadline its predecessor persisted, when it was met with a
    // transport of the same identity (server URL, token): a fixed configuration retries at once
    // and does not quote the old error.
    const restoreBackoff = Effect.gen(function*() {
      const state = yield* store.getSyncState(targetKey)
      const at = yield* now
      if (state.consecutiveFailures === 0 || !state.backoffUntil || state.backoffUntil <= at) return
      if (state.transportIdentity !== transport.identity) {
        return yield* Effect.logInfo(
          "the persisted retry deadline was met with another server or token: retrying now"
        )
      }
      const reasonCode = Schema.decodeUnknownOption(Status.ReasonCode)(state.reasonCode)
      // What the failure was is not stored beyond its reason: a server that could not be reached
      // is probed for, the others wait out their deadline.
      probeArmed = Option.getOrUndefined(reasonCode) === "transport_failed"
      yield* SubscriptionRef.update(statusRef, (s) => ({
        ...s,
        phase: "backoff" as const,
        consecutiveFailures: state.consecutiveFailures,
        backoffUntil: state.backoffUntil!,
        ...(state.lastError ? { lastError: state.lastError, reasonMessage: state.lastError } : {}),
        ...(Option.isSome(reasonCode) ? { reasonCode: reasonCode.value } : {})
      }))
    }).pipe(Effect.catchAll((e) => Effect.logWarning(`could not read the persisted sync state: ${e.message}`)))

    const forwardSignal: Effect.Effect<void, never, Scope.Scope> = Option.match(signal, {
      onNone: () => Effect.void,
      onSome: (s) =>
        Effect.flatMap(
          s.subscribe,
          (wakes) => Effect.forkScoped(Effect.forever(Effect.zipRight(Queue.take(wakes), Queue.offer(wake, undefined))))
        )
    })

    const loop = Effect.gen(function*() {
      yield* forwardSignal
      if (Duration.toMillis(config.longPollWait) > 0) yield* Effect.forkScoped(watchRemote)
      yield* restoreBackoff
      let woken: "local" | "other" | "recovered" = yield* waitForBackoffOnly
      while (true) {
        yield* cycle(woken === "recovered", woken === "local", woken === "recovered")
        woken = yield* waitForWork
      }
    })
    const waitForBackoffOnly = Effect.gen(function*() {
      const current = yield* SubscriptionRef.get(statusRef)
      const left = (current.backoffUntil?.getTime() ?? 0) - (yield* Clock.currentTimeMillis)
      if (current.consecutiveFailures === 0 || left <= 0) return "other" as const
      return (yield* waitOutBackoff(left)) ? "recovered" as const : "other" as const
    })

    const releaseLease = Effect.zipRight(Effect.sync(() => heldUntil = 0), store.releaseLease(targetKey, leaseOwner))
      .pipe(
        Effect.catchAll((e) => Effect.logWarning(`could not release the lease: ${e.message}`)),
        logged
      )

    const run = Effect.gen(function*() {
      const handle = { stop: yield* Deferred.make<void>(), done: yield* Deferred.make<void>() }
      const entered = yield* Ref.modify(
        running,
        (current) => Option.isSome(current) ? [false, current] : [true, Option.some(handle)]
      )
      if (!entered) return
      yield* Effect.scoped(loop).pipe(
        Effect.raceFirst(Deferred.await(handle.stop)),
        Effect.ensuring(
          cycleLock.withPermits(1)(releaseLease).pipe(
            Effect.zipRight(Ref.set(running, Option.none())),
            Effect.zipRight(Deferred.succeed(handle.done, undefined))
          )
        )
      )
    })

    const stop = Effect.flatMap(Ref.get(running), (current) =>
      Option.match(current, {
        onNone: () => Effect.void,
        onSome: ({ done, stop }) => Effect.zipRight(Deferred.succeed(stop, undefined), Deferred.await(done))
      }))

    return SyncManager.of({
      notifyDirty: Effect.asVoid(Queue.offer(wake, undefined)),
      status: SubscriptionRef.get(statusRef),
      changes: statusRef.changes,
      run,
      stop,
      stopForUpgrade: (project) =>
        Effect.zipRight(
          validateProject(project),
          cycleLock.withPermits(1)(Effect.zipRight(
            Ref.set(disabled, Option.some(project)),
            SubscriptionRef.update(statusRef, (s) => ({
              ...s,
              phase: "disabled" as const,
              reasonCode: "paused" as const,
              reasonMessage: `paused for the upgrade of project ${project}`
            }))
          ))
        ),
      resumeAfterUpgrade: (project) =>
        Effect.zipRight(
          validateProject(project),
          Effect.flatMap(
            Ref.getAndSet(disabled, Option.none()),
            (was) =>
              Option.isNone(was) ? Effect.void : Effect.zipRight(
                SubscriptionRef.update(statusRef, ({ reasonCode: _c, reasonMessage: _m, ...s }) => ({
                  ...s,
                  phase: "idle" as const
                })),
                Queue.offer(wake, undefined)
              )
          )
        ),
      syncNow: Effect.zipRight(cycle(true, false), SubscriptionRef.get(statusRef))
    })
  })

/**
 * A manager whose `run` is forked into the layer's scope; closing the scope stops it (and so
 * releases the lease) before the fiber is interrupted.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: SyncConfig): Layer.Layer<SyncManager, never, LocalStore | CloudTransport> =>
  Layer.scoped(
    SyncManager,
    Effect.gen(function*() {
      const manager = yield* make(config)
      yield* Effect.forkScoped(manager.run)
      yield* Effect.addFinalizer(() => manager.stop)
      return manager
    })
  )

/**
 * {@link layer} with its configuration read from `AUTOSYNC_*` environment variables
 * (`SyncConfig.fromEnv`); `overrides` win over the environment.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  overrides: SyncConfigInput = {}
): Layer.Layer<SyncManager, ConfigError.ConfigError, LocalStore | CloudTransport> =>
  Layer.unwrapEffect(Effect.map(fromEnv(overrides), layer))
