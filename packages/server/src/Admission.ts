/**
 * Flow control: which requests the server takes on, decided from the request line and headers
 * alone, before the body is read or the store touched.
 *
 * - **In flight**: at most `maxInflight` sync requests (`POST /v1/push`, `GET /v1/pull`) are
 *   handled at once; beyond that, 503 with `Retry-After`. A pull held open waiting for news
 *   (long-poll) does not count while it is held ({@link Admission}'s `held`): it costs a socket,
 *   not work.
 * - **Rate per token**: at most `rateLimit` sync requests per second per bearer token, as a
 *   token bucket of one second's worth (bursts up to `rateLimit`) refilled from `Clock`;
 *   beyond that, 429 with `Retry-After` (the whole seconds until the bucket holds a request).
 * - **Shutting down**: every request gets 503 with `Retry-After` (and `Connection: close`).
 *
 * Other routes (`/v1/health`, and whatever else the server serves) pass, but during shutdown.
 * The answers are the protocol's `TooManyRequests` / `ServiceUnavailable` errors, as JSON
 * `{ _tag, message }`. `middleware` puts the policy in front of an `HttpApp`; the decisions
 * are the service's `admit`, so the policy is tested under `TestClock` without sockets.
 *
 * @since 0.1.0
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as ServerMetrics from "./ServerMetrics.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * The most sync requests handled at once; more get 503 with `Retry-After`. Held long-polls do
   * not count while held. Defaults to no bound. Lower protects the store's latency under a
   * storm; too low turns an ordinary burst into retries.
   */
  readonly maxInflight?: number | undefined
  /**
   * The most sync requests per second per token (bursts up to this many); more get 429 with
   * `Retry-After`. Defaults to no limit.
   */
  readonly rateLimit?: number | undefined
}

/**
 * What `admit` decided. A `Rejected` request is answered with `status` and `Retry-After:
 * retryAfter` (seconds) and never reaches the API.
 *
 * @since 0.1.0
 * @category models
 */
export type Decision =
  | { readonly _tag: "Admitted" }
  | {
    readonly _tag: "Rejected"
    /** `rate`: 429; `overloaded` and `closing`: 503. */
    readonly reason: "rate" | "overloaded" | "closing"
    readonly status: 429 | 503
    /** Whole seconds, at least 1. */
    readonly retryAfter: number
    readonly message: string
  }

/**
 * The `Retry-After` of a 503 (overloaded or shutting down), in seconds: no request's end can be
 * foreseen, so the shortest the header can say. Clients add jitter and their own backoff.
 *
 * @since 0.1.0
 * @category models
 */
export const unavailableRetryAfter = 1

/** How many idle token buckets are kept before full ones are forgotten. */
const maxBuckets = 10_000

/**
 * @since 0.1.0
 * @category tags
 */
export class Admission extends Context.Tag("@autosync/server/Admission")<Admission, {
  /**
   * Decides on a sync request of `token` (its bearer token, if any). `Admitted` takes an
   * in-flight slot: the caller gives it back with `release`.
   */
  readonly admit: (token: string | undefined) => Effect.Effect<Decision>
  readonly release: Effect.Effect<void>
  /**
   * Runs `effect` (a held long-poll's wait) without counting the request in flight, when this
   * fiber holds a slot (see `middleware`); the slot is taken back afterwards, whatever the bound.
   */
  readonly held: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** From now on every request gets 503: the server is shutting down. */
  readonly close: Effect.Effect<void>
  /** Whether `close` was called. */
  readonly closing: Effect.Effect<boolean>
  /** Sync requests in flight now (held long-polls left out). */
  readonly inflight: Effect.Effect<number>
}>() {}

/**
 * Whether the current fiber handles a request that holds an in-flight slot: set by
 * {@link middleware} for admitted requests, read by `held`.
 *
 * @since 0.1.0
 * @category models
 */
export const holdsSlot: FiberRef.FiberRef<boolean> = globalValue(
  "@autosync/server/Admission/holdsSlot",
  () => FiberRef.unsafeMake(false)
)

const rejected = (reason: "rate" | "overloaded" | "closing", retryAfter: number, message: string): Rejected => ({
  _tag: "Rejected",
  reason,
  status: reason === "rate" ? 429 : 503,
  retryAfter,
  message
})

type Rejected = Extract<Decision, { _tag: "Rejected" }>

const closingDecision = rejected("closing", unavailableRetryAfter, "the server is shutting down; retry later")

/**
 * @since 0.1.0
 * @category models
 */
export interface Bucket {
  /** Requests it may take now (fractional while refilling). */
  readonly tokens: number
  /** When `tokens` was computed, in ms. */
  readonly at: number
}

/**
 * A token bucket after `now`: refilled at `rate` per second up to `rate` (at least 1), then one
 * request taken, or the whole seconds until one can be. Pure, for table tests.
 *
 * @since 0.1.0
 * @category constructors
 */
export const takeToken = (
  bucket: Bucket | undefined,
  rate: number,
  now: number
): { readonly bucket: Bucket; readonly retryAfter?: number } => {
  const capacity = Math.max(1, rate)
  const tokens = bucket === undefined
    ? capacity
    : Math.min(capacity, bucket.tokens + (Math.max(0, now - bucket.at) * rate) / 1000)
  return tokens >= 1
    ? { bucket: { tokens: tokens - 1, at: now } }
    : { bucket: { tokens, at: now }, retryAfter: Math.max(1, Math.ceil((1 - tokens) / rate)) }
}

/**
 * The admission policy with its own counters.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Admission["Type"]> =>
  Effect.gen(function*() {
    const maxInflight = options.maxInflight ?? Number.POSITIVE_INFINITY
    const rate = options.rateLimit
    const inflight = yield* Ref.make(0)
    const closing = yield* Ref.make(false)
    const buckets = yield* Ref.make(HashMap.empty<string, Bucket>())

    const takeSlot = Ref.modify(inflight, (n) => n < maxInflight ? [true, n + 1] : [false, n])
    const release = Ref.update(inflight, (n) => Math.max(0, n - 1))

    // Forgets buckets that are full again (their token has been idle for a second or more).
    const pruned = (map: HashMap.HashMap<string, Bucket>, now: number, rate: number) =>
      HashMap.size(map) <= maxBuckets
        ? map
        : HashMap.filter(map, (b) => b.tokens + ((now - b.at) * rate) / 1000 < Math.max(1, rate))

    const withinRate = (token: string | undefined) =>
      rate === undefined || token === undefined ? Effect.succeed(undefined) : Effect.flatMap(
        Clock.currentTimeMillis,
        (now) =>
          Ref.modify(buckets, (map) => {
            const taken = takeToken(Option.getOrUndefined(HashMap.get(map, token)), rate, now)
            return [taken.retryAfter, HashMap.set(pruned(map, now, rate), token, taken.bucket)]
          })
      )

    const admit = (token: string | undefined): Effect.Effect<Decision> =>
      Effect.gen(function*() {
        if (yield* Ref.get(closing)) return closingDecision
        if (!(yield* takeSlot)) {
          return rejected(
            "overloaded",
            unavailableRetryAfter,
            `the server is overloaded (${maxInflight} requests in flight)`
          )
        }
        const retryAfter = yield* withinRate(token)
        if (retryAfter === undefined) return { _tag: "Admitted" as const }
        yield* release
        return rejected("rate", retryAfter, `rate limit of ${rate} requests per second for this token exceeded`)
      })

    const held = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.flatMap(
        FiberRef.get(holdsSlot),
        (holds) =>
          holds ? Effect.acquireUseRelease(release, () => effect, () => Ref.update(inflight, (n) => n + 1)) : effect
      )

    return Admission.of({
      admit,
      release,
      held,
      close: Ref.set(closing, true),
      closing: Ref.get(closing),
      inflight: Ref.get(inflight)
    })
  })

/**
 * The policy as a service; closing the layer (the server shutting down) answers 503 from then
 * on. Provide it inside the server's layer, so it closes before the listener does.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Admission> =>
  Layer.scoped(
    Admission,
    Effect.tap(make(options), (admission) => Effect.addFinalizer(() => admission.close))
  )

/** The routes the policy governs: the ones clients send in loops. */
const governed = (url: string): boolean => {
  const path = url.split("?")[0]
  return path === "/v1/push" || path === "/v1/pull"
}

const bearer = (authorization: string | undefined): string | undefined => {
  const match = authorization === undefined ? null : /^Bearer\s+(.+)$/i.exec(authorization.trim())
  return match === null ? undefined : match[1]
}

const answer = (decision: Rejected) =>
  HttpServerResponse.unsafeJson(
    { _tag: decision.status === 429 ? "TooManyRequests" : "ServiceUnavailable", message: decision.message },
    {
      status: decision.status,
      headers: decision.reason === "closing"
        ? { "retry-after": String(decision.retryAfter), connection: "close" }
        : { "retry-after": String(decision.retryAfter) }
    }
  )

// A refusal, counted in `autosync_server_rejections_total`.
const refuse = (decision: Rejected) => Effect.as(ServerMetrics.rejected(decision.status), answer(decision))

/**
 * Puts the policy in front of an app: a rejected request is answered at once, from its
 * headers; an admitted one holds its slot until the app answered.
 *
 * @since 0.1.0
 * @category middleware
 */
export const middleware = <E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | Admission | HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function*() {
    const admission = yield* Admission
    const request = yield* HttpServerRequest.HttpServerRequest
    if (!governed(request.url)) return (yield* admission.closing) ? yield* refuse(closingDecision) : yield* app
    const decision = yield* admission.admit(bearer(request.headers["authorization"]))
    if (decision._tag === "Rejected") return yield* refuse(decision)
    return yield* app.pipe(Effect.locally(holdsSlot, true), Effect.ensuring(admission.release))
  })
