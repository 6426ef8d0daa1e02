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
 * - `GET /v1/admin/clients` → `{ clients, latest_seq }` (who is connected, their cursor and lag) and
 *   `GET /v1/admin/activity` → `{ interval_ms, buckets, rejections, latest_seq }` (push/pull
 *   throughput per interval over the last minutes): admin tokens only (403 for other tokens).
 * - `GET /dashboard` → an HTML page, without credentials: it asks for an admin token and polls the
 *   two admin endpoints.
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

/**
 * The id of the admin token a request to `/v1/admin/*` carries; provided by {@link AdminAuthorization}.
 *
 * @since 0.1.0
 * @category tags
 */
export class AdminToken extends Context.Tag("@autosync/http/SyncApi/AdminToken")<AdminToken, string>() {}

/**
 * Bearer-token security for the admin endpoints: {@link Unauthorized} for a missing or unknown
 * token, {@link Forbidden} for a token that is not an admin token.
 *
 * @since 0.1.0
 * @category tags
 */
export class AdminAuthorization
  extends HttpApiMiddleware.Tag<AdminAuthorization>()("@autosync/http/SyncApi/AdminAuthorization", {
    failure: Schema.Union(Unauthorized, Forbidden, ServerError),
    provides: AdminToken,
    security: { bearer: HttpApiSecurity.bearer }
  })
{}

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

const Millis = Schema.Number.pipe(Schema.int(), Schema.nonNegative())
const optionalDate = Schema.NullOr(Schema.Date)

/**
 * One client id the server has seen: when it last pushed and pulled (ISO dates, `null` if never),
 * the token it used last, its cursor (the highest seq up to which its pulls sent it everything it
 * reads, when it named itself with `exclude_client_id`, as the manager does), its lag (`latest_seq` − cursor), and how many
 * mutations it pushed and was sent since it was first seen.
 *
 * @since 0.1.0
 * @category models
 */
export class ClientInfo extends Schema.Class<ClientInfo>("ClientInfo")({
  clientId: Schema.propertySignature(Mutation.ClientId).pipe(Schema.fromKey("client_id")),
  tokenId: Schema.propertySignature(Schema.NullOr(Schema.String)).pipe(Schema.fromKey("token_id")),
  lastPushAt: Schema.propertySignature(optionalDate).pipe(Schema.fromKey("last_push_at")),
  lastPullAt: Schema.propertySignature(optionalDate).pipe(Schema.fromKey("last_pull_at")),
  cursor: Schema.NullOr(Millis),
  lag: Schema.NullOr(Millis),
  pushed: Millis,
  pulled: Millis
}) {}

/**
 * The answer of `GET /v1/admin/clients`: every client, most recently seen first.
 *
 * @since 0.1.0
 * @category models
 */
export class ClientsResponse extends Schema.Class<ClientsResponse>("ClientsResponse")({
  clients: Schema.Array(ClientInfo),
  latestSeq: Schema.propertySignature(Millis).pipe(Schema.fromKey("latest_seq"))
}) {}

/**
 * One interval of server activity: requests and mutations pushed and pulled, and answers refused
 * with a 4xx or 5xx status, in the interval that starts at `start`.
 *
 * @since 0.1.0
 * @category models
 */
export class ActivityBucket extends Schema.Class<ActivityBucket>("ActivityBucket")({
  start: Schema.Date,
  pushRequests: Schema.propertySignature(Millis).pipe(Schema.fromKey("push_requests")),
  pullRequests: Schema.propertySignature(Millis).pipe(Schema.fromKey("pull_requests")),
  pushed: Millis,
  pulled: Millis,
  rejected: Millis
}) {}

/**
 * The answer of `GET /v1/admin/activity`: the last intervals, oldest first (the current one last),
 * the refusals by status since the server started, and the latest seq of the log.
 *
 * @since 0.1.0
 * @category models
 */
export class ActivityResponse extends Schema.Class<ActivityResponse>("ActivityResponse")({
  intervalMs: Schema.propertySignature(Millis).pipe(Schema.fromKey("interval_ms")),
  buckets: Schema.Array(ActivityBucket),
  rejections: Schema.Record({ key: Schema.String, value: Millis }),
  latestSeq: Schema.propertySignature(Millis).pipe(Schema.fromKey("latest_seq"))
}) {}

/**
 * The `admin` group: who is connected and what the server did lately, for admin tokens only.
 *
 * @since 0.1.0
 * @category api
 */
export class AdminGroup extends HttpApiGroup.make("admin")
  .add(HttpApiEndpoint.get("clients", "/v1/admin/clients").addSuccess(ClientsResponse))
  .add(HttpApiEndpoint.get("activity", "/v1/admin/activity").addSuccess(ActivityResponse))
  .middleware(AdminAuthorization)
{}

/**
 * The `dashboard` group: the HTML page of `GET /dashboard` (no credentials; the page asks for an
 * admin token and sends it to the admin endpoints).
 *
 * @since 0.1.0
 * @category api
 */
export class DashboardGroup extends HttpApiGroup.make("dashboard")
  .add(
    HttpApiEndpoint.get("dashboard", "/dashboard").addSuccess(
      HttpApiSchema.Text({ contentType: "text/html; charset=utf-8" })
    )
  )
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
  .add(AdminGroup)
  .add(DashboardGroup)
  .addError(BadRequest)
  .addError(NotFound)
  .addError(PayloadTooLarge)
  .addError(TooManyRequests)
  .addError(ServerError)
  .addError(ServiceUnavailable)
{}
