/**
 * What ends the loop's wait for work: a wake then `debounce` of quiet (capped by
 * `debounceMaxWait`), news from the watcher, or `pollInterval` since the last cycle (while
 * disabled: half the lease interval, to renew it); while failing, nothing but the backoff
 * deadline (or the server's return, see `recovery.ts`).
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
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
export const waitForWork = (shared: Shared): Effect.Effect<Woken> =>
  Effect.gen(function*() {
    const { config } = shared
    const isDisabled = Option.isSome(yield* Ref.get(shared.disabled))
    if (!isDisabled) {
      const woken = yield* backoffDeadline(shared)
      if (Option.isSome(woken)) return woken.value
    }
    const timer = isDisabled
      ? Duration.min(config.pollInterval, Duration.unsafeDivide(config.leaseInterval, 2))
      : config.pollInterval
    return yield* Effect.raceAll([
      Effect.as(debounced(shared), "local" as const),
      Effect.as(Effect.sleep(timer), "other" as const),
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
