/**
 * The autosync wire protocol as one `HttpApi`: the server (`@autosync/server`) implements it and
 * the client (`HttpCloudTransport`) is derived from it, so the two cannot drift apart. Only this
 * module knows the snake_case JSON; the schemas come from `@autosync/core`'s `Mutation` module.
 *
 * - `POST /v1/push`, body `{ client_id, mutations: [{ client_seq, project, entity, entity_key, op, payload }] }`
 *   → `{ accepted_seqs }`, one server seq per entry, in order. A retried `(client_id, client_seq)`
 *   gets its first seq back; one that comes back with different content is refused with 409.
 * - `GET /v1/pull?since_seq=&limit=&wait_ms=&exclude_client_id=` → `{ mutations, has_more,
 *   latest_seq }`, only the projects the token may read, in seq order, less the writes of
 *   `exclude_client_id` (a replica leaves out its own). `limit` (default {@link defaultPullLimit})
 *   is clamped to {@link maxPullLimit}; `wait_ms` (default 0) is clamped to {@link maxWaitMs}:
 *   with a positive wait and nothing to return, the server holds the request until there is
 *   something or the wait ends (long-poll). When `has_more` is false, the page holds every
 *   mutation up to `latest_seq` that was not left out.
 * - `GET /v1/health` → `{ status: "ok" }`, without credentials.
 *
 * Push and pull need `Authorization: Bearer <token>`. Every error answer is JSON with a
 * `message`: 400 {@link BadRequest} (naming the bad field), 401 {@link Unauthorized}, 403
 * {@link Forbidden} (nothing of the batch stored), 404 {@link NotFound}, 409 {@link Conflict},
 * 413 {@link PayloadTooLarge}, 429 {@link TooManyRequests} (rate limit), 500 {@link ServerError}
 * (storage failures only, never bad input), 503 {@link ServiceUnavailable} (overloaded or shutting
 * down). 429 and 503 carry `Retry-After` (seconds); clients must not send again before it.
 *
 * @since 0.1.0
 */
import { CloudTransport, Mutation } from "@autosync/core"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as Context from "effect/Context"
import * as Schema from "effect/Schema"

/**
 * The largest page a pull returns, whatever `limit` asks (the same cap as core's memory server).
 *
 * @since 0.1.0
 * @category models
 */
export const maxPullLimit: number = CloudTransport.maxPullLimit

/**
 * The page size when a pull gives no `limit`.
 *
 * @since 0.1.0
 * @category models
 */
export const defaultPullLimit = 100

/**
 * The longest a pull is held (30 s): a larger `wait_ms` is clamped to it, so a held request
 * always ends before common proxy and client timeouts.
 *
 * @since 0.1.0
 * @category models
 */
export const maxWaitMs = 30_000

// ----------------------------------------------------------------------------
// errors
// ----------------------------------------------------------------------------

/**
 * 400: the request is malformed; `message` names the bad field.
 *
 * @since 0.1.0
 * @category errors
 */
export class BadRequest extends Schema.TaggedError<BadRequest>()(
  "BadRequest",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 400 })
) {}

/**
 * 401: no bearer token, or one the server does not know.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 401 })
) {}

/**
 * 403: the token may not touch a project of the batch. Nothing of the batch was stored.
 *
 * @since 0.1.0
 * @category errors
 */
export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 403 })
) {}

/**
 * 404: no such route.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotFound extends Schema.TaggedError<NotFound>()(
  "NotFound",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

/**
 * 409: a `(client_id, client_seq)` was already pushed with different content (a copied database
 * file, or two replicas sharing an identity). `seq` is the server seq it got the first time,
 * when it was stored. Nothing of the batch was stored.
 *
 * @since 0.1.0
 * @category errors
 */
export class Conflict extends Schema.TaggedError<Conflict>()(
  "Conflict",
  {
    message: Schema.String,
    seq: Schema.optionalWith(Mutation.Seq, { exact: true })
  },
  HttpApiSchema.annotations({ status: 409 })
) {}

/**
 * 413: the request body is larger than the server's limit.
 *
 * @since 0.1.0
 * @category errors
 */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 413 })
) {}

/**
 * 500: the server could not do its part (its storage failed). Never sent for bad input.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServerError extends Schema.TaggedError<ServerError>()(
  "ServerError",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 500 })
) {}

/**
 * 429: the token sent more requests than the server's rate limit allows. The answer has a
 * `Retry-After` header (whole seconds): a client must not send again before it.
 *
 * @since 0.1.0
 * @category errors
 */
export class TooManyRequests extends Schema.TaggedError<TooManyRequests>()(
  "TooManyRequests",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 429 })
) {}

/**
 * 503: the server is overloaded (too many requests in flight) or shutting down. The answer has
 * a `Retry-After` header (whole seconds): a client must not send again before it.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()(
  "ServiceUnavailable",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 503 })
) {}

// ----------------------------------------------------------------------------
// security
// ----------------------------------------------------------------------------

/**
 * The projects the request's token may push to and pull from; provided by {@link Authorization}.
 *
 * @since 0.1.0
 * @category tags
 */
export class AllowedProjects extends Context.Tag("@autosync/http/SyncApi/AllowedProjects")<
  AllowedProjects,
  ReadonlySet<string>
>() {}

/**
 * Bearer-token security for push and pull. The server implements it (checking its token
 * table); it fails with {@link Unauthorized}, or {@link ServerError} when the check itself fails.
 *
 * @since 0.1.0
 * @category tags
 */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("@autosync/http/SyncApi/Authorization", {
  failure: Schema.Union(Unauthorized, ServerError),
  provides: AllowedProjects,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

// ----------------------------------------------------------------------------
// endpoints
// ----------------------------------------------------------------------------

const intParam = (key: string) =>
  Schema.NumberFromString.pipe(
    // `int` also refuses integers beyond the safe range.
    Schema.int({ message: () => `${key} must be an integer` }),
    Schema.nonNegative({ message: () => `${key} must be >= 0` })
  )

/**
 * The query of `GET /v1/pull`. `since_seq` is required; `limit` (>= 1, default
 * {@link defaultPullLimit}) and `wait_ms` (>= 0, default 0) are optional and clamped by the
 * server to {@link maxPullLimit} and {@link maxWaitMs}; `exclude_client_id` (a client id) is
 * optional.
 *
 * @since 0.1.0
 * @category models
 */
export const PullParams = Schema.Struct({
  sinceSeq: Schema.propertySignature(intParam("since_seq")).pipe(Schema.fromKey("since_seq")),
  limit: Schema.optionalWith(
    intParam("limit").pipe(Schema.positive({ message: () => "limit must be >= 1" })),
    { default: () => defaultPullLimit, exact: true }
  ),
  waitMs: Schema.optionalWith(intParam("wait_ms"), { default: () => 0, exact: true }).pipe(Schema.fromKey("wait_ms")),
  // The puller's own client id: its own writes are left out of the page.
  excludeClientId: Schema.optionalWith(Mutation.ClientId, { exact: true }).pipe(Schema.fromKey("exclude_client_id"))
})

/**
 * @since 0.1.0
 * @category models
 */
export const Health = Schema.Struct({ status: Schema.Literal("ok") })

/**
 * The deepest a request body may nest before it is refused without a closer look (200 levels):
 * far above any valid batch (a payload may nest `Mutation.maxPayloadDepth` levels, under three
 * levels of batch), and far below where describing the bad value would exhaust the stack.
 *
 * @since 0.1.0
 * @category models
 */
export const maxBodyDepth = 200

/**
 * Why a JSON value nests deeper than `max` levels, or `undefined`. Iterative, so it survives
 * any depth.
 *
 * @since 0.1.0
 * @category models
 */
export const nestingProblem = (value: unknown, max: number = maxBodyDepth): string | undefined => {
  const stack: Array<readonly [unknown, number]> = [[value, 1]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!
    if (typeof v !== "object" || v === null) continue
    if (depth > max) return `the request body nests deeper than ${max} levels`
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1])
  }
  return undefined
}

/**
 * The body of `POST /v1/push`: a `Mutation.PushBatch`, after a cheap check that it is an object
 * nesting at most {@link maxBodyDepth} levels.
 *
 * @since 0.1.0
 * @category models
 */
export const PushBody: Schema.Schema<Mutation.PushBatch, unknown> = Schema.compose(
  Schema.Unknown.pipe(Schema.filter((u) =>
    typeof u !== "object" || u === null || Array.isArray(u)
      ? "the request body must be a JSON object { client_id, mutations }"
      : (nestingProblem(u) ?? true)
  )),
  Mutation.PushBatch,
  { strict: false }
)

/**
 * The `sync` group: `push`, `pull` (both behind {@link Authorization}) and `health`.
 *
 * @since 0.1.0
 * @category api
 */
export class SyncGroup extends HttpApiGroup.make("sync")
  .add(
    HttpApiEndpoint.post("push", "/v1/push")
      .setPayload(PushBody)
      .addSuccess(Mutation.PushResult)
      .addError(Forbidden)
      .addError(Conflict)
      .middleware(Authorization)
  )
  .add(
    HttpApiEndpoint.get("pull", "/v1/pull")
      .setUrlParams(PullParams)
      .addSuccess(Mutation.PullResponse)
      .middleware(Authorization)
  )
  .add(HttpApiEndpoint.get("health", "/v1/health").addSuccess(Health))
{}

/**
 * The whole protocol. The API-level errors are the ones any request can get, whatever its
 * route: bad input, an unknown route, a body over the limit, the rate limit or an overloaded
 * server (with `Retry-After`), a storage failure.
 *
 * @since 0.1.0
 * @category api
 */
export class SyncApi extends HttpApi.make("autosync")
  .add(SyncGroup)
  .addError(BadRequest)
  .addError(NotFound)
  .addError(PayloadTooLarge)
  .addError(TooManyRequests)
  .addError(ServerError)
  .addError(ServiceUnavailable)
{}
