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
 * The parts live in `internal/`: `wake.ts` (debounce, the poll schedule's fiber, remote news),
 * `cycle.ts` (push, pull, the outcome), `lease.ts` (fencing), `watcher.ts` (the long-poll and
 * its reconnect schedule), `recovery.ts` (the backoff schedule and its wait, the health probe,
 * the restored deadline), `watchdog.ts` (the stall watchdog behind `Status.stalled`), and
 * `shared.ts` (the `Ref`s and queues they share). This module assembles them; `run` is one
 * fiber in a `FiberHandle`, so a second `run` returns at once and `stop` interrupts it (the
 * lease is released on the way out). Each failure streak steps one `Backoff.schedule`, started
 * after the failures before it; each step's deadline is persisted, so a restarted process waits
 * it out and continues the sequence from the persisted count.
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberHandle from "effect/FiberHandle"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { CloudTransport } from "./CloudTransport.js"
import { DirtySignal } from "./DirtySignal.js"
import { makeCycle } from "./internal/cycle.js"
import { makeLease } from "./internal/lease.js"
import { restoreBackoff } from "./internal/recovery.js"
import * as shared from "./internal/shared.js"
import { forwardSignal, makePoll, waitForRestoredBackoff, waitForWork, type Woken } from "./internal/wake.js"
import { watch } from "./internal/watcher.js"
import { LocalStore } from "./LocalStore.js"
import type * as Status from "./Status.js"
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
export const pushedTotal: Metric.Metric.Counter<number> = shared.pushedTotal
/**
 * Mutations pulled and handed to the local store.
 *
 * @since 0.1.0
 * @category metrics
 */
export const pulledTotal: Metric.Metric.Counter<number> = shared.pulledTotal
/**
 * Failed cycles.
 *
 * @since 0.1.0
 * @category metrics
 */
export const failedTotal: Metric.Metric.Counter<number> = shared.failedTotal
/**
 * Local rows waiting to be pushed, after the last cycle.
 *
 * @since 0.1.0
 * @category metrics
 */
export const pendingRows: Metric.Metric<MetricKeyType.MetricKeyType.Gauge<number>, number, any> = shared.pendingRows

/**
 * How often the manager probes the server's health while it backs off after the server could
 * not be reached (jittered by ±20 %, so 2.4–3.6 s), and the shortest wait worth probing in:
 * a retry deadline closer than this is simply waited for.
 *
 * @since 0.1.0
 * @category models
 */
export const probeInterval: Duration.Duration = shared.probeInterval

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
    const state = yield* shared.makeShared(yield* LocalStore, yield* CloudTransport, config)
    const signal = yield* Effect.serviceOption(DirtySignal)
    const lease = yield* makeLease(state)
    const cycle = makeCycle(state, lease)
    const { status, wake } = state

    // restore → wait out a restored deadline → cycle → wait for work → cycle → …
    const loop = Effect.gen(function*() {
      yield* forwardSignal(state, signal)
      if (Duration.toMillis(config.longPollWait) > 0) yield* Effect.forkScoped(watch(state))
      yield* restoreBackoff(state)
      const poll = yield* makePoll(state)
      const cycleAfter = (woken: Woken) =>
        cycle({ force: woken === "recovered", localOnly: woken === "local", probed: woken === "recovered" })
      yield* Effect.iterate(yield* waitForRestoredBackoff(state), {
        while: () => true,
        body: (woken) => Effect.zipRight(cycleAfter(woken), waitForWork(state, poll))
      })
    }).pipe(Effect.scoped)

    // The running loop, at most one. The manager outlives any scope `make` could see: `run`
    // and `stop` own the loop's lifetime, so the handle's own scope is never closed.
    const running = yield* FiberHandle.make<void>().pipe(Scope.extend(yield* Scope.make()))
    const run = Effect.gen(function*() {
      const fiber = yield* FiberHandle.run(
        running,
        Effect.ensuring(loop, state.cycleLock.withPermits(1)(lease.release)),
        { onlyIfMissing: true } // a second concurrent `run` gets an interrupted fiber: it returns at once
      )
      // Stopped (the fiber is interrupted) is a normal end; `run` interrupted stops the loop.
      yield* Effect.onInterrupt(Fiber.await(fiber), () => Fiber.interrupt(fiber))
    })

    return SyncManager.of({
      notifyDirty: Effect.asVoid(Queue.offer(wake, undefined)),
      status: SubscriptionRef.get(status),
      changes: status.changes,
      run,
      stop: FiberHandle.clear(running),
      stopForUpgrade: (project) =>
        Effect.zipRight(
          validateProject(project),
          state.cycleLock.withPermits(1)(Effect.zipRight(
            Ref.set(state.disabled, Option.some(project)),
            SubscriptionRef.update(status, (s) => ({
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
            Ref.getAndSet(state.disabled, Option.none()),
            (was) =>
              Option.isNone(was) ? Effect.void : Effect.zipRight(
                SubscriptionRef.update(status, ({ reasonCode: _c, reasonMessage: _m, ...s }) => ({
                  ...s,
                  phase: "idle" as const
                })),
                Queue.offer(wake, undefined)
              )
          )
        ),
      syncNow: Effect.zipRight(cycle({ force: true, localOnly: false, probed: false }), SubscriptionRef.get(status))
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
