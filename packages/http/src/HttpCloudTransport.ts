/**
 * The `CloudTransport` over HTTP: a client derived from `SyncApi` with `HttpApiClient`, a bearer
 * token on every request, a request timeout, and every failure turned into a `TransportError`:
 *
 * - 401 → `auth_required`; 403 → `policy_forbidden`; 409 → `identity_conflict` (a
 *   `(client_id, client_seq)` pushed before with other content: a copied database file);
 * - 429, and 503 with `Retry-After` → `rate_limited`, with the delay the server asked for in
 *   `retryAfterMs` (the manager waits at least that long);
 * - everything else (unreachable server, timeout, other 4xx and 5xx, a malformed response) →
 *   `transport_failed`, with the HTTP status when there was one and a message.
 *
 * `health` is `GET /v1/health` (no token), the probe the manager sends while the server is
 * unreachable; `identity` is the base URL and a hash of the token (never the token), which
 * tells a persisted retry deadline that was recorded against another server or token.
 *
 * Arguments are checked before anything is sent, with the same rules and 400 status as core's
 * in-process server, so both transports answer a bad call alike.
 *
 * @since 0.1.0
 */
import { CloudTransport, Mutation } from "@autosync/core"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import { maxWaitMs, SyncApi } from "./SyncApi.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Where the server listens, e.g. `http://127.0.0.1:8787`. */
  readonly baseUrl: string | URL
  /** The bearer token (see `autosync token create`). */
  readonly token: Redacted.Redacted | string
  /**
   * How long one request may take before it fails with `transport_failed`. Defaults to
   * {@link defaultTimeout}. A long-poll pull gets its wait on top of this.
   */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * The default request timeout: 30 seconds.
 *
 * @since 0.1.0
 * @category models
 */
export const defaultTimeout: Duration.Duration = Duration.seconds(30)

// The status of the last response seen by the current fiber, so a response whose body cannot be
// decoded is still reported with its status (and a 401/403 with an odd body is still classified).
const lastStatus = globalValue(
  "@autosync/http/HttpCloudTransport/lastStatus",
  () => FiberRef.unsafeMake<number | undefined>(undefined)
)

// The `Retry-After` header of that response, when it had one.
const lastRetryAfter = globalValue(
  "@autosync/http/HttpCloudTransport/lastRetryAfter",
  () => FiberRef.unsafeMake<string | undefined>(undefined)
)

/**
 * A `Retry-After` header in ms from `nowMs`: whole seconds (`"2"`) or an HTTP date; `undefined`
 * when absent or unreadable. A date in the past gives 0.
 *
 * @since 0.1.0
 * @category models
 */
export const retryAfterMs = (header: string | undefined, nowMs: number): number | undefined => {
  if (header === undefined) return undefined
  const trimmed = header.trim()
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed), 86_400) * 1000
  // An HTTP date names its day and month ("Wed, 02 Dec 2026 12:00:07 GMT"); `Date.parse` alone takes "-1".
  const at = /^[A-Za-z]{3}, /.test(trimmed) ? Date.parse(trimmed) : Number.NaN
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs)
}

/**
 * 429, and 503 with a `Retry-After`: the server sheds load and said when to come back. A 503
 * without it is an ordinary failure (`transport_failed`).
 */
const rateLimited = (
  error: CloudTransport.TransportError,
  retryAfter: number | undefined
): CloudTransport.TransportError =>
  error.status === 429 || (error.status === 503 && retryAfter !== undefined)
    ? new CloudTransport.TransportError({
      reason: "rate_limited",
      status: error.status,
      message: retryAfter === undefined
        ? error.message
        : `${error.message} (the server asks to retry in ${Duration.format(Duration.millis(retryAfter))})`,
      ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter })
    })
    : error

const failed = (message: string, status?: number) =>
  new CloudTransport.TransportError(
    status === undefined ? { reason: "transport_failed", message } : { reason: "transport_failed", status, message }
  )

const fromStatus = (status: number | undefined, message: string): CloudTransport.TransportError => {
  if (status === 401) return new CloudTransport.TransportError({ reason: "auth_required", status, message })
  if (status === 403) return new CloudTransport.TransportError({ reason: "policy_forbidden", status, message })
  if (status === 409) return new CloudTransport.TransportError({ reason: "identity_conflict", status, message })
  return failed(message, status)
}

const statusOf = (tag: string): number | undefined => {
  switch (tag) {
    case "BadRequest":
    case "HttpApiDecodeError":
      return 400
    case "Unauthorized":
      return 401
    case "Forbidden":
      return 403
    case "NotFound":
      return 404
    case "Conflict":
      return 409
    case "PayloadTooLarge":
      return 413
    case "TooManyRequests":
      return 429
    case "ServerError":
      return 500
    case "ServiceUnavailable":
      return 503
  }
  return undefined
}

/**
 * The identity of a transport: its base URL and a 64-bit FNV-1a hash of the token, in hex. Not a
 * secret-grade hash, and it need not be: it only tells one token from another, and is stored in
 * the replica's file in place of the token.
 *
 * @since 0.1.0
 * @category models
 */
export const identityOf = (baseUrl: string | URL, token: string): string => {
  let h = 0xcbf29ce484222325n
  for (const byte of new TextEncoder().encode(token)) {
    h = BigInt.asUintN(64, (h ^ BigInt(byte)) * 0x100000001b3n)
  }
  const url = URL.canParse(String(baseUrl)) ? new URL(baseUrl).href : String(baseUrl)
  return `${url} token:${h.toString(16).padStart(16, "0")}`
}

const truncate = (s: string, max = 500) => s.length > max ? `${s.slice(0, max)}…` : s

const badRequest = (message: string) => failed(message, 400)

/** Any failure of a generated client call, as a `TransportError`. */
const transportErrorOf = (what: string, error: unknown, status: number | undefined): CloudTransport.TransportError => {
  if (error instanceof CloudTransport.TransportError) return error
  if (ParseResult.isParseError(error)) {
    // Name the bad fields (`mutations.0.seq: Expected an integer…`), not the schema's structure.
    const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
    const detail = truncate(
      issues.slice(0, 3).map((i) => `${i.path.length > 0 ? i.path.join(".") : "body"}: ${i.message}`).join("; ")
    )
    // No response seen: the request itself could not be encoded (the client validates on the
    // way out, so a bad batch never reaches the server).
    if (status === undefined) return badRequest(`invalid ${what} request: ${detail}`)
    return fromStatus(status, `malformed response from the server (${status}): ${detail}`)
  }
  const e = error as { readonly _tag?: string; readonly message?: string; readonly response?: { status: number } }
  switch (e._tag) {
    case "RequestError":
      return failed(`request failed: ${e.message ?? "unknown error"}`)
    case "ResponseError":
      return fromStatus(e.response?.status, `unexpected response: ${e.message ?? "unknown error"}`)
  }
  const known = e._tag === undefined ? undefined : statusOf(e._tag)
  if (known !== undefined) return fromStatus(known, truncate(e.message ?? e._tag ?? "error"))
  return failed(`unexpected failure: ${truncate(String(e.message ?? error))}`, status)
}

/**
 * A `CloudTransport` over the `HttpClient` in the context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<CloudTransport.CloudTransport["Type"], never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const token = typeof options.token === "string" ? Redacted.make(options.token) : options.token
    const timeout = Duration.decode(options.timeout ?? defaultTimeout)
    const client = yield* HttpApiClient.make(SyncApi, {
      baseUrl: options.baseUrl,
      transformClient: (c) =>
        c.pipe(
          HttpClient.mapRequest(HttpClientRequest.bearerToken(token)),
          HttpClient.tap((response) =>
            Effect.zipRight(
              FiberRef.set(lastStatus, response.status),
              FiberRef.set(lastRetryAfter, response.headers["retry-after"])
            )
          )
        )
    })

    const call = <A, E>(what: string, effect: Effect.Effect<A, E>, limit: Duration.Duration) =>
      effect.pipe(
        Effect.catchAll((error) =>
          Effect.gen(function*() {
            const header = yield* FiberRef.get(lastRetryAfter)
            const retryAfter = retryAfterMs(header, yield* Clock.currentTimeMillis)
            return yield* Effect.fail(
              rateLimited(transportErrorOf(what, error, yield* FiberRef.get(lastStatus)), retryAfter)
            )
          })
        ),
        Effect.timeoutFail({
          duration: limit,
          onTimeout: () => failed(`${what} timed out after ${Duration.format(limit)}`)
        }),
        Effect.locally(lastStatus, undefined),
        Effect.locally(lastRetryAfter, undefined)
      )

    const push = Effect.fn("HttpCloudTransport.push")(function*(batch: Mutation.PushBatch) {
      return yield* call("push", client.sync.push({ payload: batch }), timeout)
    })

    const pull = Effect.fn("HttpCloudTransport.pull")(
      function*(sinceSeq: number, limit: number, pullOptions?: CloudTransport.PullOptions) {
        if (!Number.isSafeInteger(sinceSeq) || sinceSeq < 0) {
          return yield* badRequest("since_seq must be an integer >= 0")
        }
        if (!Number.isSafeInteger(limit) || limit < 1) return yield* badRequest("limit must be an integer >= 1")
        const waitMs = pullOptions?.wait === undefined
          ? 0
          : Math.min(maxWaitMs, Math.max(0, Math.ceil(Duration.toMillis(Duration.decode(pullOptions.wait)))))
        return yield* call(
          "pull",
          client.sync.pull({
            urlParams: {
              sinceSeq,
              limit,
              waitMs,
              ...(pullOptions?.excludeClientId === undefined ? {} : { excludeClientId: pullOptions.excludeClientId })
            }
          }),
          Duration.sum(timeout, Duration.millis(waitMs))
        )
      }
    )

    const health = call("health", client.sync.health(), timeout).pipe(
      Effect.asVoid,
      Effect.withSpan("HttpCloudTransport.health")
    )

    return CloudTransport.CloudTransport.of({
      push,
      pull,
      health,
      identity: identityOf(options.baseUrl, Redacted.value(token))
    })
  })

/**
 * A `CloudTransport` over HTTP, using the `HttpClient` provided (e.g. `NodeHttpClient.layerUndici`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithoutHttpClient = (
  options: Options
): Layer.Layer<CloudTransport.CloudTransport, never, HttpClient.HttpClient> =>
  Layer.effect(CloudTransport.CloudTransport, make(options))

/**
 * A `CloudTransport` over HTTP with the platform's `fetch`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<CloudTransport.CloudTransport> =>
  layerWithoutHttpClient(options).pipe(Layer.provide(FetchHttpClient.layer))

/**
 * The options from the environment: `AUTOSYNC_SERVER_URL`, `AUTOSYNC_TOKEN` (read as a
 * `Redacted`) and `AUTOSYNC_TIMEOUT` (a duration, e.g. `10 seconds`; defaults to
 * {@link defaultTimeout}).
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  baseUrl: Config.string("SERVER_URL").pipe(Config.withDescription("the sync server's base URL")),
  token: Config.redacted("TOKEN").pipe(Config.withDescription("the bearer token")),
  timeout: Config.duration("TIMEOUT").pipe(
    Config.withDefault(defaultTimeout),
    Config.withDescription("the request timeout; a long-poll pull gets its wait on top")
  )
}).pipe(Config.nested("AUTOSYNC"))

/**
 * A `CloudTransport` over HTTP configured from the environment (see {@link config}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: Layer.Layer<CloudTransport.CloudTransport, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(config, layer)
)
