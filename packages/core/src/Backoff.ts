/**
 * The retry delay after failures: `min(base * 2^(n-1), max)`, then jitter uniform in ±25 %,
 * floored at `base / 2` and never above `max`.
 *
 * The rule is one `Schedule` ({@link schedule}): `Schedule.exponential(base)` capped by
 * `Schedule.union(Schedule.spaced(max))` (a union waits the shorter delay), then
 * `Schedule.jitteredWith({ min: 0.75, max: 1.25 })`, then the floor and the cap. A schedule
 * counts its recurrences from zero, but the manager's failure count is persisted and a
 * restarted process must continue its sequence, so the schedule is built from the count it
 * starts after: `schedule(options, n)` waits the delays of failures n+1, n+2, …, and
 * {@link delay} is the first delay of that schedule. The jitter comes from Effect's `Random`,
 * so a seeded or fixed `Random` makes every delay exact in tests
 * (`Effect.withRandomFixed([0.5])` gives the un-jittered value).
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
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

// Beyond 2^1023 a double overflows; every delay there is `max` anyway.
const exponentOf = (failures: number) => Math.max(0, Math.min(Math.floor(failures) - 1, 1023))

// The floor and the cap, applied after the jitter; whole milliseconds, as persisted deadlines are.
const clamp = (options: Options) => {
  const base = Duration.toMillis(Duration.decode(options.base))
  const max = Duration.toMillis(Duration.decode(options.max))
  return (millis: number) => Math.round(Math.min(max, Math.max(base / 2, millis)))
}

/**
 * The backoff as a `Schedule`: recurrence i waits the delay of failure `after + i + 1`, and
 * outputs that failure's number. Used as it is for retries inside one call; the manager takes
 * one step of it per failed cycle (see {@link delay}), because its deadline is persisted and
 * must survive a restart.
 *
 * @since 0.1.0
 * @category constructors
 */
export const schedule = (options: Options, after = 0): Schedule.Schedule<number> => {
  const start = exponentOf(after + 1)
  const toRange = clamp(options)
  return Schedule.exponential(Duration.times(Duration.decode(options.base), 2 ** start)).pipe(
    Schedule.union(Schedule.spaced(options.max)),
    Schedule.jitteredWith({ min: 1 - jitterFraction, max: 1 + jitterFraction }),
    Schedule.modifyDelay((_, d) => Duration.millis(toRange(Duration.toMillis(d)))),
    Schedule.map(([, i]) => start + i + 1)
  )
}

/**
 * The delay after `failures` consecutive failures, drawn from Effect's `Random`: the first
 * step of `schedule(options, failures - 1)`. `failures` below 1 counts as 1; any count
 * saturates at `max` without overflow.
 *
 * @since 0.1.0
 * @category constructors
 */
export const delay = (failures: number, options: Options): Effect.Effect<Duration.Duration> =>
  Effect.map(
    Schedule.run(Schedule.delays(schedule(options, exponentOf(failures))), 0, [undefined]),
    (delays) => Chunk.unsafeHead(delays)
  )

/**
 * The closed form of {@link schedule}'s delays for a jitter draw `r` in [0, 1): pure, for
 * table tests (Backoff.test.ts checks that the schedule waits exactly these).
 * `failures` below 1 counts as 1; any count saturates at `max` without overflow.
 *
 * @since 0.1.0
 * @category constructors
 */
export const delayFor = (failures: number, options: Options, r: number): Duration.Duration => {
  const base = Duration.toMillis(Duration.decode(options.base))
  const max = Duration.toMillis(Duration.decode(options.max))
  const raw = Math.min(base * 2 ** exponentOf(failures), max)
  return Duration.millis(clamp(options)(raw * (1 - jitterFraction + 2 * jitterFraction * r)))
}

/**
 * A failure delay raised to what the server asked for (`Retry-After`, in ms), plus jitter
 * uniform in [0, 25 %) of it from Effect's `Random`, so that clients told the same instant do
 * not come back in step. Never below `minimumMs`; the backoff `delay` when it is longer.
 *
 * @since 0.1.0
 * @category constructors
 */
export const atLeast = (delay: Duration.Duration, minimumMs: number | undefined): Effect.Effect<Duration.Duration> =>
  minimumMs === undefined || minimumMs <= 0
    ? Effect.succeed(delay)
    : Effect.map(
      Random.next,
      (r) => Duration.max(delay, Duration.millis(Math.ceil(minimumMs * (1 + jitterFraction * r))))
    )
