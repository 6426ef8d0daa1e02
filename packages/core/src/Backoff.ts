/**
 * The retry delay after failures: `min(base * 2^(n-1), max)`, then jitter uniform in ±25 %,
 * floored at `base / 2` and never above `max`. The jitter comes from Effect's `Random`, so a
 * seeded or fixed `Random` makes every delay exact in tests
 * (`Effect.withRandomFixed([0.5])` gives the un-jittered value).
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly base: Duration.DurationInput
  readonly max: Duration.DurationInput
}

/**
 * How far jitter moves a delay either way (0.25 = ±25 %).
 *
 * @since 0.1.0
 * @category models
 */
export const jitterFraction = 0.25

/**
 * The delay for a jitter draw `r` in [0, 1): pure, for table tests.
 * `failures` below 1 counts as 1; any count saturates at `max` without overflow.
 *
 * @since 0.1.0
 * @category constructors
 */
export const delayFor = (failures: number, options: Options, r: number): Duration.Duration => {
  const base = Duration.toMillis(Duration.decode(options.base))
  const max = Duration.toMillis(Duration.decode(options.max))
  const exponent = Math.max(0, Math.min(Math.floor(failures) - 1, 1023))
  const raw = Math.min(base * 2 ** exponent, max)
  const jittered = raw * (1 - jitterFraction + 2 * jitterFraction * r)
  return Duration.millis(Math.round(Math.min(max, Math.max(base / 2, jittered))))
}

/**
 * The delay after `failures` consecutive failures, drawn from Effect's `Random`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const delay = (failures: number, options: Options): Effect.Effect<Duration.Duration> =>
  Effect.map(Random.next, (r) => delayFor(failures, options, r))

/**
 * The same delays as a `Schedule`, for retries inside one call: attempt n waits `delay(n)`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const schedule = (options: Options): Schedule.Schedule<number> =>
  Schedule.forever.pipe(
    Schedule.addDelayEffect((n) => delay(n + 1, options))
  )
