/**
 * Live sync's watcher: a pull held open on the server (`longPollWait`). News wakes the loop at
 * once (no debounce: the remote writer already debounced). The watcher only fetches: the cycle
 * applies its page, under the lease. A failed connection is retried on a jittered schedule,
 * so agents that lost one server do not come back in step; its first answer after a failure
 * tells a backoff wait that the server is back.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import { lagSeqs, logged, probeInterval, type Shared } from "./shared.js"
import * as Watchdog from "./watchdog.js"

// One long-poll request. `seen`: the highest seq the watcher has brought; `failed`: a request
// failed since the last answer.
const longPoll = (shared: Shared, seen: Ref.Ref<number>, failed: Ref.Ref<boolean>) =>
  Effect.gen(function*() {
    const { config, store, transport } = shared
    const started = yield* Clock.currentTimeMillis
    const applied = (yield* store.getSyncState(config.targetKey)).lastPulledSeq
    const cursor = Math.max(yield* Ref.get(seen), applied)
    const page = yield* transport.pull(cursor, config.pullBatchSize, {
      wait: config.longPollWait,
      excludeClientId: store.clientId
    }).pipe(
      Effect.tapError(() => Ref.set(failed, true)),
      Effect.tapError((e) => Watchdog.watcherFailed(shared, e.message)),
      // A server that sheds load said when to come back: not before (the reconnect rhythm comes on top).
      Effect.tapError((e) =>
        e.reason === "rate_limited" ? Effect.sleep(Duration.millis(e.retryAfterMs ?? 0)) : Effect.void
      )
    )
    yield* Watchdog.watcherAnswered(shared)
    if (yield* Ref.getAndSet(failed, false)) yield* Queue.offer(shared.serverBack, undefined)
    if (page.mutations.length > 0) {
      // News not applied yet: the replica is behind the server by what lies past its cursor.
      yield* Metric.set(lagSeqs, Math.max(0, page.latestSeq - applied))
      yield* Ref.set(seen, Math.max(cursor, page.latestSeq, page.mutations[page.mutations.length - 1].seq))
      yield* Ref.update(shared.remote, (s) => ({
        ...s,
        newsPending: true,
        prefetched: Option.some({ sinceSeq: cursor, page })
      }))
      yield* Queue.offer(shared.remoteNews, undefined)
    } else {
      // A server that answers before the wait is over (or ignores it) must not make us spin.
      const early = Duration.toMillis(config.longPollWait) - ((yield* Clock.currentTimeMillis) - started)
      if (early > 0) yield* Effect.sleep(Duration.millis(early))
    }
  })

/** The watcher's reconnect rhythm: `max(baseBackoff, probeInterval)`, jittered by ±20 %. */
export const reconnectSchedule = (shared: Shared) =>
  Schedule.spaced(Duration.max(shared.config.baseBackoff, probeInterval)).pipe(
    Schedule.jittered,
    Schedule.modifyDelay((_, d) => Duration.millis(Math.round(Duration.toMillis(d))))
  )

/** The watcher: runs until interrupted, reconnecting after any failure or defect. */
export const watch = (shared: Shared): Effect.Effect<never> =>
  Effect.flatMap(Ref.make(false), (failed) =>
    // A connection starts from the store's cursor.
    Effect.flatMap(Ref.make(0), (seen) => Effect.forever(longPoll(shared, seen, failed))).pipe(
      Effect.sandbox,
      Effect.tapError((cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logDebug("long-poll failed", cause)
      ),
      Effect.retry({ schedule: reconnectSchedule(shared), while: (cause) => !Cause.isInterruptedOnly(cause) }),
      // Only an interruption ends the retries.
      Effect.catchAll(() => Effect.interrupt),
      logged(shared.config)
    ))
