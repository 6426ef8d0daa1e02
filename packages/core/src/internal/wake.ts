/**
 * What ends the loop's wait for work: a wake then `debounce` of quiet (capped by
 * `debounceMaxWait`), news from the watcher, or the poll: `pollInterval` since the last cycle
 * (while disabled: half the lease interval, to renew it), a `Schedule` driving a scoped fiber.
 * While failing, nothing but the backoff deadline (or the server's return, see `recovery.ts`).
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberHandle from "effect/FiberHandle"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { DirtySignal } from "../DirtySignal.js"
import { waitOutBackoff } from "./recovery.js"
import type { Shared } from "./shared.js"

/**
 * Why the loop woke. `local`: only local writes (with live sync the cycle may skip its pull);
 * `recovered`: the server came back during a backoff (the cycle runs before the deadline).
 */
export type Woken = "local" | "other" | "recovered"

// A wake, then quiet for `debounce` (each wake restarts it), but never longer than `debounceMaxWait`.
const debounced = ({ config, wake }: Shared) =>
  Effect.gen(function*() {
    yield* Queue.take(wake)
    const start = yield* Clock.currentTimeMillis
    const debounce = Duration.toMillis(config.debounce)
    const maxWait = Duration.toMillis(config.debounceMaxWait)
    // The window left: the debounce, or less when the cap comes first.
    const window = Effect.map(Clock.currentTimeMillis, (at) => Math.min(debounce, maxWait - (at - start)))
    yield* Effect.iterate(true, {
      while: (wokenAgain) => wokenAgain,
      body: () =>
        Effect.flatMap(window, (remaining) =>
          remaining <= 0
            ? Effect.succeed(false)
            : Effect.map(Effect.timeoutOption(Queue.take(wake), Duration.millis(remaining)), Option.isSome))
    })
  })

// The poll's rhythm: `Schedule.spaced(pollInterval)`, shortened while paused by
// `stopForUpgrade` to half the lease interval, so the paused manager still renews its lease.
const pollSchedule = ({ config, disabled }: Shared) =>
  Schedule.spaced(config.pollInterval).pipe(
    Schedule.modifyDelayEffect((_, delay) =>
      Effect.map(
        Ref.get(disabled),
        (paused) => Option.isSome(paused) ? Duration.min(delay, Duration.unsafeDivide(config.leaseInterval, 2)) : delay
      )
    )
  )

/**
 * The poll: a fiber in the loop's scope that offers to `due` on the poll schedule. Each wait
 * `restart`s it, so a poll comes a poll interval after the last cycle, not at fixed times (a
 * cycle woken otherwise puts the next poll off).
 */
export interface Poll {
  readonly restart: Effect.Effect<void>
  readonly due: Queue.Dequeue<void>
}

/** Starts the poll's handle in the loop's scope (its fiber starts with the first wait). */
export const makePoll = (shared: Shared): Effect.Effect<Poll, never, Scope.Scope> =>
  Effect.gen(function*() {
    const handle = yield* FiberHandle.make<void, never>()
    const due = yield* Queue.sliding<void>(1)
    const ticks = Effect.schedule(Queue.offer(due, undefined), pollSchedule(shared))
    // The running fiber is replaced (interrupted) first, then any poll it offered is dropped.
    const restart = Effect.zipRight(FiberHandle.clear(handle), Queue.takeAll(due)).pipe(
      Effect.zipRight(FiberHandle.run(handle, Effect.asVoid(ticks))),
      Effect.asVoid
    )
    return { restart, due }
  })

// Waits out the backoff deadline, if the status has one still ahead.
const backoffDeadline = (shared: Shared): Effect.Effect<Option.Option<Woken>> =>
  Effect.gen(function*() {
    const current = yield* SubscriptionRef.get(shared.status)
    const left = (current.backoffUntil?.getTime() ?? 0) - (yield* Clock.currentTimeMillis)
    if (current.consecutiveFailures === 0 || left <= 0) return Option.none()
    return Option.some((yield* waitOutBackoff(shared, left)) ? "recovered" as const : "other" as const)
  })

/** The wait before the first cycle: only a backoff deadline restored from the store. */
export const waitForRestoredBackoff = (shared: Shared): Effect.Effect<Woken> =>
  Effect.map(backoffDeadline(shared), Option.getOrElse(() => "other" as const))

/** The wait between cycles. */
export const waitForWork = (shared: Shared, poll: Poll): Effect.Effect<Woken> =>
  Effect.gen(function*() {
    if (Option.isNone(yield* Ref.get(shared.disabled))) {
      const woken = yield* backoffDeadline(shared)
      if (Option.isSome(woken)) return woken.value
    }
    yield* poll.restart
    return yield* Effect.raceAll([
      Effect.as(debounced(shared), "local" as const),
      Effect.as(Queue.take(poll.due), "other" as const),
      Effect.as(Queue.take(shared.remoteNews), "other" as const)
    ])
  })

/** Forwards a `DirtySignal`'s wakes to the loop, in the scope of `run`. */
export const forwardSignal = (
  shared: Shared,
  signal: Option.Option<DirtySignal["Type"]>
): Effect.Effect<void, never, Scope.Scope> =>
  Option.match(signal, {
    onNone: () => Effect.void,
    onSome: (s) =>
      Effect.flatMap(s.subscribe, (wakes) =>
        Effect.forkScoped(Effect.forever(Effect.zipRight(Queue.take(wakes), Queue.offer(shared.wake, undefined)))))
  })
