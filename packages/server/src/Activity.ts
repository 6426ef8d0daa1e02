/**
 * What the server did lately, for the dashboard: per fixed interval (10 s by default), how many
 * push and pull requests it answered, how many mutations they carried, and how many answers
 * were refusals (status 4xx or 5xx); plus the refusals by status since the server started.
 *
 * A small ring in memory: only the last {@link Options.buckets} intervals (30, so 5 minutes)
 * are kept, each server process counts its own requests, and nothing survives a restart. Time
 * comes from `Clock`, so `TestClock` drives the intervals in tests.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The width of one interval. Defaults to 10 seconds. */
  readonly interval?: Duration.DurationInput | undefined
  /** How many intervals are kept (the current one included). Defaults to 30. */
  readonly buckets?: number | undefined
}

/**
 * The counts of one interval, which starts at `start` (epoch milliseconds).
 *
 * @since 0.1.0
 * @category models
 */
export interface Bucket {
  readonly start: number
  readonly pushRequests: number
  readonly pullRequests: number
  readonly pushed: number
  readonly pulled: number
  readonly rejected: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly intervalMs: number
  /** The kept intervals, oldest first, the current one last; intervals without activity are zeros. */
  readonly buckets: ReadonlyArray<Bucket>
  /** Refusals by status code since the server started. */
  readonly rejections: Readonly<Record<string, number>>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Activity extends Context.Tag("@autosync/server/Activity")<Activity, {
  /** Counts a push or pull request that was answered with this many mutations. */
  readonly record: (kind: "push" | "pull", mutations: number) => Effect.Effect<void>
  /** Counts an answer refused with this status (>= 400). */
  readonly reject: (status: number) => Effect.Effect<void>
  readonly snapshot: Effect.Effect<Snapshot>
}>() {}

/**
 * The ring's state: the intervals with activity (by index, `floor(now / interval)`), newest last,
 * and the refusals by status.
 *
 * @since 0.1.0
 * @category models
 */
export interface State {
  readonly buckets: ReadonlyArray<Bucket & { readonly index: number }>
  readonly rejections: Readonly<Record<string, number>>
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const empty: State = { buckets: [], rejections: {} }

const zero = (index: number, intervalMs: number) => ({
  index,
  start: index * intervalMs,
  pushRequests: 0,
  pullRequests: 0,
  pushed: 0,
  pulled: 0,
  rejected: 0
})

/**
 * Adds `delta` to the interval `index` and forgets the intervals that fell out of the ring. Pure.
 *
 * @since 0.1.0
 * @category combinators
 */
export const add = (
  state: State,
  index: number,
  delta: Partial<Omit<Bucket, "start">>,
  config: { readonly intervalMs: number; readonly buckets: number }
): State => {
  const kept = state.buckets.filter((b) => b.index > index - config.buckets)
  const last = kept.at(-1)
  const current = last !== undefined && last.index === index ? last : zero(index, config.intervalMs)
  const next = {
    ...current,
    pushRequests: current.pushRequests + (delta.pushRequests ?? 0),
    pullRequests: current.pullRequests + (delta.pullRequests ?? 0),
    pushed: current.pushed + (delta.pushed ?? 0),
    pulled: current.pulled + (delta.pulled ?? 0),
    rejected: current.rejected + (delta.rejected ?? 0)
  }
  return { ...state, buckets: current === last ? [...kept.slice(0, -1), next] : [...kept, next] }
}

/**
 * The ring as of interval `index`: every kept interval, zeros where nothing happened. Pure.
 *
 * @since 0.1.0
 * @category combinators
 */
export const window = (
  state: State,
  index: number,
  config: { readonly intervalMs: number; readonly buckets: number }
): ReadonlyArray<Bucket> => {
  const byIndex = new Map(state.buckets.map((b) => [b.index, b]))
  return Array.from({ length: config.buckets }, (_, i) => {
    const at = index - config.buckets + 1 + i
    const { index: _index, ...bucket } = byIndex.get(at) ?? zero(at, config.intervalMs)
    return bucket
  })
}

/**
 * A ring in memory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Activity["Type"]> =>
  Effect.gen(function*() {
    const config = {
      intervalMs: Math.max(1, Duration.toMillis(Duration.decode(options.interval ?? "10 seconds"))),
      buckets: Math.max(1, Math.floor(options.buckets ?? 30))
    }
    const state = yield* Ref.make(empty)
    const indexNow = Effect.map(Clock.currentTimeMillis, (now) => Math.floor(now / config.intervalMs))
    const bump = (delta: Partial<Omit<Bucket, "start">>, status?: number) =>
      Effect.flatMap(indexNow, (index) =>
        Ref.update(state, (s) => {
          const next = add(s, index, delta, config)
          if (status === undefined) return next
          const key = String(status)
          return { ...next, rejections: { ...next.rejections, [key]: (next.rejections[key] ?? 0) + 1 } }
        }))
    return Activity.of({
      record: (kind, mutations) =>
        bump(kind === "push" ? { pushRequests: 1, pushed: mutations } : { pullRequests: 1, pulled: mutations }),
      reject: (status) => bump({ rejected: 1 }, status),
      snapshot: Effect.gen(function*() {
        const s = yield* Ref.get(state)
        return { intervalMs: config.intervalMs, buckets: window(s, yield* indexNow, config), rejections: s.rejections }
      })
    })
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Activity> => Layer.effect(Activity, make(options))
