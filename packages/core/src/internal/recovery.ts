/**
 * The wait after a failure, and recovery from it.
 *
 * The backoff: each failure streak has one `Backoff.schedule` (exponential, ±25 % jitter from
 * `Random`, floored at base/2, capped), started after the failures before the streak (after a
 * restart: the persisted count), and stepped once per failed cycle ({@link stepBackoff}). A
 * `ScheduleDriver` steps and sleeps in one go; here the two halves are apart because the
 * step's deadline is shown in the status and persisted (with the transport's identity) before
 * anything waits on it, and a restarted process must honour it: the loop then sleeps to that
 * deadline ({@link waitOutBackoff}), and a success ends the streak ({@link endStreak}).
 *
 * Recovery after an outage: while backing off after the server could not be reached, probe
 * its health every ~3 s (jittered, one request at a time) and, on the first answer, end the
 * wait: the next cycle runs at once instead of at a deadline that may be minutes away. Live
 * sync's watcher reconnecting tells the same. Other reasons wait out their deadline: health
 * says nothing about a token (401/403) or an identity conflict.
 */
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Schema from "effect/Schema"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Backoff from "../Backoff.js"
import type { TransportError } from "../CloudTransport.js"
import * as Status from "../Status.js"
import type { SyncConfig } from "../SyncConfig.js"
import { now, probeInterval, type Shared, type Streak } from "./shared.js"

// A streak's backoff schedule, started after `after` failures.
const startStreak = (config: SyncConfig, after: number): Streak => {
  const schedule = Backoff.schedule({ base: config.baseBackoff, max: config.maxBackoff }, after)
  return { schedule, state: schedule.initial, failures: after }
}

/**
 * The deadline of failure `failuresSoFar + 1` at `at`: the next step of the streak's backoff
 * schedule (a streak's first failure starts one, after `failuresSoFar`). The delay is drawn
 * from `Random` by the step.
 */
export const stepBackoff = ({ config, streak }: Shared, failuresSoFar: number, at: Date) =>
  Effect.gen(function*() {
    const { schedule, state } = Option.getOrElse(
      Option.filter(yield* Ref.get(streak), (s) => s.failures === failuresSoFar),
      () => startStreak(config, failuresSoFar)
    )
    const [next, , decision] = yield* schedule.step(at.getTime(), undefined, state)
    // The backoff schedule never ends (it is `exponential` ∪ `spaced`): it always continues.
    const until = ScheduleDecision.isContinue(decision) ? ScheduleIntervals.start(decision.intervals) : at.getTime()
    yield* Ref.set(streak, Option.some({ schedule, state: next, failures: failuresSoFar + 1 }))
    return new Date(until)
  })

/** A success ends the failure streak: the next failure starts a new backoff schedule. */
export const endStreak = ({ streak }: Shared) => Ref.set(streak, Option.none())

// The probe's rhythm: `probeInterval` jittered by ±20 % (2.4–3.6 s), so that agents that lost
// one server do not come back in step.
const probeSchedule = Schedule.jittered(Schedule.spaced(probeInterval))

/** Sleeps the first delay of `schedule`, rounded to whole milliseconds. */
export const sleepFirstDelay = (schedule: Schedule.Schedule<unknown>) =>
  Schedule.run(Schedule.delays(schedule), 0, [undefined]).pipe(
    Effect.flatMap((delays) => Effect.sleep(Duration.millis(Math.round(Duration.toMillis(Chunk.unsafeHead(delays))))))
  )

// Succeeds once the server answers its health check. The schedule never ends: the probe fails
// only by being interrupted.
const probeUntilUp = (health: Effect.Effect<void, TransportError>) =>
  Effect.zipRight(
    sleepFirstDelay(probeSchedule),
    Effect.retry(health, probeSchedule).pipe(Effect.catchAll(() => Effect.never))
  )

/**
 * Sleeps `left` ms, to the backoff deadline; `true` when the server came back first (only
 * watched for when the probe is armed and the deadline is further than a probe away).
 */
export const waitOutBackoff = ({ probeArmed, serverBack, transport }: Shared, left: number) =>
  Effect.gen(function*() {
    const sleep = Effect.as(Effect.sleep(Duration.millis(left)), false)
    if (!(yield* Ref.get(probeArmed)) || left <= Duration.toMillis(probeInterval)) return yield* sleep
    yield* Queue.takeAll(serverBack)
    const back = yield* Effect.raceAll([
      sleep,
      Effect.as(Queue.take(serverBack), true),
      ...(transport.health === undefined ? [] : [Effect.as(probeUntilUp(transport.health), true)])
    ])
    if (back) yield* Effect.logInfo("the server answers again: retrying before the deadline")
    return back
  })

/**
 * A restarted process honours the deadline its predecessor persisted, when it was met with a
 * transport of the same identity (server URL, token): a fixed configuration retries at once
 * and does not quote the old error. The failure count is restored with it, so the next
 * failure's delay continues the predecessor's backoff sequence.
 */
export const restoreBackoff = ({ config, probeArmed, status, store, streak, transport }: Shared) =>
  Effect.gen(function*() {
    const state = yield* store.getSyncState(config.targetKey)
    const at = yield* now
    if (state.consecutiveFailures === 0 || !state.backoffUntil || state.backoffUntil <= at) return
    if (state.transportIdentity !== transport.identity) {
      return yield* Effect.logInfo("the persisted retry deadline was met with another server or token: retrying now")
    }
    const reasonCode = Schema.decodeUnknownOption(Status.ReasonCode)(state.reasonCode)
    // What the failure was is not stored beyond its reason: a server that could not be reached
    // is probed for, the others wait out their deadline.
    yield* Ref.set(probeArmed, Option.getOrUndefined(reasonCode) === "transport_failed")
    // The streak goes on: its schedule starts after the persisted count.
    yield* Ref.set(streak, Option.some(startStreak(config, state.consecutiveFailures)))
    yield* SubscriptionRef.update(status, (s) => ({
      ...s,
      phase: "backoff" as const,
      consecutiveFailures: state.consecutiveFailures,
      backoffUntil: state.backoffUntil!,
      ...(state.lastError ? { lastError: state.lastError, reasonMessage: state.lastError } : {}),
      ...(Option.isSome(reasonCode) ? { reasonCode: reasonCode.value } : {})
    }))
  }).pipe(Effect.catchAll((e) => Effect.logWarning(`could not read the persisted sync state: ${e.message}`)))
