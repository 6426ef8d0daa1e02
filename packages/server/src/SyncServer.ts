/**
 * The reference sync server: `SyncApi` implemented over a `MutationLog` and `Tokens`.
 *
 * - `push`: refuses (403) a batch with any project the token may not use, before anything is
 *   stored; else appends it to the log (409 on an identity conflict, naming the seq).
 * - `pull`: a page of the token's projects, less the writes of `exclude_client_id` (the puller's
 *   own); with `wait_ms` and nothing to return, held (`LogRules.hold`, as core's in-process server
 *   holds it) until the log grows past the latest seq it saw (re-checked, since the new seq may be
 *   another project's or the puller's own) or the wait (at most `SyncApi.maxWaitMs`) ends, or the
 *   server shuts down.
 * - Bad input never reaches a handler as a defect: bodies over the limit get 413, bodies that are
 *   not JSON or do not match the schema get 400 `BadRequest` naming the field, unknown routes 404
 *   `NotFound`; every error answer is JSON with a `message`. Only storage failures give 500.
 * - Flow control (`maxInflight`, `rateLimit`; see `Admission.ts`) answers 429/503 with
 *   `Retry-After` in front of the API, before a body is read.
 * - Who is connected (`Clients`: per client id, its last push and pull, cursor and token id) and
 *   what the server did lately (`Activity`: push/pull throughput per interval, refusals by status)
 *   are kept in memory as requests are answered; admin tokens read them at `/v1/admin/clients`
 *   and `/v1/admin/activity`, and `/dashboard` shows them. `layerSqlite`/`layerPg` keep the
 *   clients in the database (`Clients.layer`); other servers keep them in memory unless a
 *   `Clients` service is provided.
 * - Requests are logged (method, URL, status; never headers, so never a token).
 * - The log is compacted in the background once it holds `compactThreshold` superseded rows
 *   (`Compactor`); a push's `acked_through` raises its client's watermark.
 * - Shutdown is graceful: the listener stops, held pulls answer at once, in-flight requests
 *   finish, then the store closes.
 *
 * `layer(options)` serves on a port with `NodeHttpServer`; `layerHttp(options)` needs an
 * `HttpServer` from outside (e.g. `NodeHttpServer.layerTest`); `layerSqlite` and `layerPg` come
 * with their store and token table.
 *
 * @since 0.1.0
 */
import type { Mutation } from "@autosync/core"
import { LogRules } from "@autosync/core"
import { SyncApi } from "@autosync/http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiError from "@effect/platform/HttpApiError"
import type * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import type * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Migrator from "@effect/sql/Migrator"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cache from "effect/Cache"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createServer } from "node:http"
import * as Activity from "./Activity.js"
import * as Admission from "./Admission.js"
import * as Clients from "./Clients.js"
import * as Compactor from "./Compactor.js"
import * as Dashboard from "./Dashboard.js"
import * as SyncRoutes from "./internal/syncRoutes.js"
import { pullBody } from "./internal/wire.js"
import type { MutationLogError } from "./MutationLog.js"
import { MutationLog } from "./MutationLog.js"
import * as PgMutationLog from "./PgMutationLog.js"
import * as ServerMetrics from "./ServerMetrics.js"
import * as SqliteMutationLog from "./SqliteMutationLog.js"
import * as Tokens from "./Tokens.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The port to listen on. Defaults to 8787; 0 picks a free one. */
  readonly port?: number | undefined
  /** The interface to listen on. Defaults to `127.0.0.1` (use `0.0.0.0` to accept remote clients). */
  readonly host?: string | undefined
  /** The largest request body accepted, in bytes; larger ones get 413. Defaults to 8 MiB. */
  readonly bodyLimit?: number | undefined
  /**
   * Log one line per request, at level Info: method, path and query, status and duration, e.g.
   * `GET /v1/pull?since_seq=0&limit=500 200 3ms`. Never headers, so never a token. Defaults to true.
   */
  readonly logRequests?: boolean | undefined
  /**
   * Compact the log in the background once it holds this many superseded rows (see `Compactor`);
   * 0 turns it off. Defaults to 10,000.
   */
  readonly compactThreshold?: number | undefined
  /** How often the log is checked for compaction. Defaults to 30 seconds. */
  readonly compactInterval?: Duration.DurationInput | undefined
  /** Flow control: see `Admission.Options` (429/503 with `Retry-After`). Defaults to no bound. */
  readonly maxInflight?: number | undefined
  /** Flow control: sync requests per second per token. Defaults to no limit. */
  readonly rateLimit?: number | undefined
  /**
   * Renders the process's metrics in the Prometheus text format; when given, `GET /metrics`
   * answers with it, without a token (see `ServerMetrics`). Requests are counted either way.
   */
  readonly metrics?: Effect.Effect<string> | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export const defaults = {
  port: 8787,
  host: "127.0.0.1",
  bodyLimit: 8 * 1024 * 1024,
  logRequests: true
} as const

/** How long a verified token is remembered before it is looked up again. */
const tokenCacheTtl = Duration.seconds(10)

const logError = (message: string, cause: unknown) =>
  Effect.logError(message, cause).pipe(Effect.annotateLogs({ package: "@autosync/server", module: "SyncServer" }))

// ----------------------------------------------------------------------------
// security
// ----------------------------------------------------------------------------

// A token check that failed: 500 when the store could not answer, else 401 saying why.
const refuseToken = (error: Tokens.TokensError): Effect.Effect<never, SyncApi.Unauthorized | SyncApi.ServerError> =>
  error.reason === "storage"
    ? Effect.zipRight(
      logError("token check failed", error),
      Effect.fail(new SyncApi.ServerError({ message: "the token could not be checked" }))
    )
    : Effect.fail(new SyncApi.Unauthorized({ message: error.message }))

/** A token's projects, 401 for a missing or unknown token: the check behind every sync route. */
class BearerCheck extends Context.Tag("@autosync/server/SyncServer/BearerCheck")<
  BearerCheck,
  (token: Redacted.Redacted) => Effect.Effect<SyncRoutes.Verified, SyncApi.Unauthorized | SyncApi.ServerError>
>() {}

const layerBearerCheck: Layer.Layer<BearerCheck, never, Tokens.Tokens> = Layer.effect(
  BearerCheck,
  Effect.gen(function*() {
    const tokens = yield* Tokens.Tokens
    // A token that verified is remembered for a while: one lookup per token and interval, not
    // one per request. Failures are not remembered (a token created a moment ago works at once).
    const verified = yield* Cache.makeWith({
      capacity: 4096,
      lookup: (token: string) =>
        Effect.map(tokens.grant(token), (grant): SyncRoutes.Verified => ({
          projects: new Set(grant.projects),
          tokenId: grant.id
        })),
      timeToLive: (exit) => Exit.isSuccess(exit) ? tokenCacheTtl : Duration.zero
    })
    return (token) => verified.get(Redacted.value(token)).pipe(Effect.catchAll(refuseToken))
  })
)

/**
 * The bearer-token check: the token's projects, 401 for a missing or unknown token.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerAuthorization: Layer.Layer<SyncApi.Authorization, never, Tokens.Tokens> = Layer.effect(
  SyncApi.Authorization,
  Effect.map(
    BearerCheck,
    (check) =>
      SyncApi.Authorization.of({ bearer: (token) => Effect.map(check(token), (verified) => verified.projects) })
  )
).pipe(Layer.provide(layerBearerCheck))

/**
 * The admin check: the token's id for an admin token, 401 for a missing or unknown token, 403 for
 * a token that is not an admin token.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerAdminAuthorization: Layer.Layer<SyncApi.AdminAuthorization, never, Tokens.Tokens> = Layer.effect(
  SyncApi.AdminAuthorization,
  Effect.gen(function*() {
    const tokens = yield* Tokens.Tokens
    const verified = yield* Cache.makeWith({
      capacity: 256,
      lookup: (token: string) => tokens.grant(token),
      timeToLive: (exit) => Exit.isSuccess(exit) ? tokenCacheTtl : Duration.zero
    })
    return SyncApi.AdminAuthorization.of({
      bearer: (token) =>
        verified.get(Redacted.value(token)).pipe(
          Effect.catchAll(refuseToken),
          Effect.flatMap((grant: Tokens.Grant) =>
            grant.admin
              ? Effect.succeed(grant.id)
              : Effect.fail(
                new SyncApi.Forbidden({
                  message: `token ${grant.id} is not an admin token (create one with \`autosync token create --admin\`)`
                })
              )
          )
        )
    })
  })
)

/** The id of the bearer token of the current request (already verified by the middleware). */
const requestTokenId = Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
  const header = request.headers["authorization"] ?? ""
  return Tokens.idOf(header.replace(/^bearer\s+/i, ""))
})

/** The HttpApi routes' handlers get the token's id from its header (the sync routes know it). */
const withTokenId = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(requestTokenId, (id) => Effect.provideService(effect, SyncRoutes.TokenId, id))

// ----------------------------------------------------------------------------
// server state: who is connected, recent activity
// ----------------------------------------------------------------------------

/** The `Clients` provided from outside (e.g. `Clients.layer` over the server's database), else one in memory. */
const layerClientsOrMemory: Layer.Layer<Clients.Clients> = Layer.effect(
  Clients.Clients,
  Effect.flatMap(
    Effect.serviceOption(Clients.Clients),
    Option.match({ onNone: () => Clients.makeMemory, onSome: Effect.succeed })
  )
)

const layerActivity: Layer.Layer<Activity.Activity> = Activity.layer()

// ----------------------------------------------------------------------------
// shutdown
// ----------------------------------------------------------------------------

/** Completed when the server starts shutting down (before it stops listening). */
class ShutdownSignal extends Context.Tag("@autosync/server/SyncServer/ShutdownSignal")<
  ShutdownSignal,
  Deferred.Deferred<void>
>() {}

const layerShutdownSignal = Layer.scoped(
  ShutdownSignal,
  Effect.gen(function*() {
    const signal = yield* Deferred.make<void>()
    yield* Effect.addFinalizer(() => Deferred.succeed(signal, undefined))
    return signal
  })
)

/** Once shutting down, answers with `Connection: close`, so no kept-alive socket delays the close. */
const closeConnectionOnShutdown = (signal: Deferred.Deferred<void>) =>
  HttpApp.appendPreResponseHandler((_request, response) =>
    Effect.map(
      Deferred.isDone(signal),
      (done) => done ? HttpServerResponse.setHeader(response, "connection", "close") : response
    )
  )

// ----------------------------------------------------------------------------
// handlers
// ----------------------------------------------------------------------------

const storageFailed = (error: MutationLogError): Effect.Effect<never, SyncApi.ServerError> =>
  Effect.zipRight(
    logError("mutation log failed", error),
    Effect.fail(new SyncApi.ServerError({ message: "the server could not access its mutation log" }))
  )

const fromAppendError = (error: MutationLogError): Effect.Effect<never, SyncApi.Conflict | SyncApi.ServerError> =>
  error.reason === "conflict"
    ? Effect.fail(
      new SyncApi.Conflict(
        error.seq === undefined ? { message: error.message } : { message: error.message, seq: error.seq }
      )
    )
    : storageFailed(error)

/**
 * What the handlers need: the log, the tokens, and the server's bookkeeping.
 *
 * @since 0.1.0
 * @category models
 */
export type HandlerServices = MutationLog | Tokens.Tokens | Clients.Clients | Activity.Activity

/** Push and pull themselves, behind whichever route serves them (see `layerSyncRoutes`). */
class SyncHandlers extends Context.Tag("@autosync/server/SyncServer/SyncHandlers")<
  SyncHandlers,
  Pick<SyncRoutes.Handlers, "push" | "pull">
>() {}

const layerSyncHandlers: Layer.Layer<SyncHandlers, never, HandlerServices> = Layer.effect(
  SyncHandlers,
  Effect.gen(function*() {
    const log = yield* MutationLog
    const clients = yield* Clients.Clients
    const activity = yield* Activity.Activity
    // Held pulls answer at once when the server shuts down, instead of delaying it.
    const shutdown = yield* ShutdownSignal
    // A held pull does not count as in flight (when the server runs the admission policy).
    const admission = yield* Effect.serviceOption(Admission.Admission)
    const awaitAfter = Option.match(admission, {
      onNone: () => log.awaitAfter,
      onSome: (a) => (seq: number) => a.held(log.awaitAfter(seq))
    })

    // Spans without a captured call site: `Effect.fn`'s costs an Error per request.
    const push = (batch: Mutation.PushBatch) =>
      Effect.gen(function*() {
        const refused = LogRules.forbidden(batch.mutations, yield* SyncApi.AllowedProjects)
        if (Option.isSome(refused)) return yield* new SyncApi.Forbidden({ message: refused.value })
        const acceptedSeqs = yield* log.append(batch.clientId, batch.mutations, batch.ackedThrough).pipe(
          Effect.catchAll(fromAppendError)
        )
        yield* Metric.incrementBy(ServerMetrics.mutationsAcceptedTotal, acceptedSeqs.length)
        yield* clients.recordPush(batch.clientId, yield* SyncRoutes.TokenId, acceptedSeqs.length)
        yield* activity.record("push", acceptedSeqs.length)
        return acceptedSeqs
      }).pipe(Effect.withSpan("SyncServer.push", { captureStackTrace: false }))

    // Answered with the page as stored (see internal/wire.ts), not through the schema encoder.
    const pull = (params: typeof SyncApi.PullParams.Type) =>
      Effect.gen(function*() {
        const projects = [...(yield* SyncApi.AllowedProjects)]
        // A client that names itself (the manager always does) is recorded as the request arrives
        // (a held pull shows it is connected), and again with the cursor its answer brings it to.
        const clientId = params.excludeClientId
        if (clientId !== undefined) yield* clients.recordPull(clientId, yield* SyncRoutes.TokenId, params.sinceSeq)
        const limit = Math.min(params.limit, SyncApi.maxPullLimit)
        const read = log.sinceStored(params.sinceSeq, projects, limit, params.excludeClientId).pipe(
          Effect.catchAll(storageFailed)
        )
        const page = yield* LogRules.hold(read, {
          awaitAfter: (seq) => ServerMetrics.holding(awaitAfter(seq)),
          wait: Duration.millis(Math.min(params.waitMs, SyncApi.maxWaitMs)),
          stop: Deferred.await(shutdown)
        })
        if (clientId !== undefined) {
          const last = page.mutations.at(-1)?.seq ?? params.sinceSeq
          yield* clients.recordSent(clientId, page.mutations.length, page.hasMore ? last : page.latestSeq)
        }
        yield* activity.record("pull", page.mutations.length)
        return HttpServerResponse.text(pullBody(page), { contentType: "application/json" })
      }).pipe(Effect.withSpan("SyncServer.pull", { captureStackTrace: false }))
    return { push, pull }
  })
).pipe(Layer.provide(layerShutdownSignal))

/**
 * The `sync` group's handlers over the `MutationLog`, behind the bearer-token check. (A server
 * made by `layerHttp` answers push and pull in front of the API, see `layerSyncRoutes`, with
 * the same handlers.)
 *
 * @since 0.1.0
 * @category layers
 */
export const layerHandlers: Layer.Layer<HttpApiGroup.ApiGroup<"autosync", "sync">, never, HandlerServices> =
  HttpApiBuilder.group(SyncApi.SyncApi, "sync", (handlers) =>
    Effect.map(SyncHandlers, ({ pull, push }) =>
      handlers
        .handle("push", ({ payload }) => withTokenId(Effect.map(push(payload), (acceptedSeqs) => ({ acceptedSeqs }))))
        .handle("pull", ({ urlParams }) => withTokenId(pull(urlParams)))
        .handle("health", () => Effect.succeed({ status: "ok" as const })))).pipe(
      Layer.provide(layerAuthorization),
      Layer.provide(layerSyncHandlers)
    )

/**
 * Every request's response hooks, and push and pull served in front of the API app
 * (`internal/syncRoutes.ts`: the same contract without HttpApi's per-request work).
 */
class SyncRoutesService extends Context.Tag("@autosync/server/SyncServer/SyncRoutes")<SyncRoutesService, {
  readonly serve: <E, R>(app: HttpApp.Default<E, R>) => HttpApp.Default<E, R | HttpServerRequest.HttpServerRequest>
}>() {}

const layerSyncRoutes = (bodyLimit: number): Layer.Layer<SyncRoutesService, never, MutationLog | Tokens.Tokens> =>
  Layer.effect(
    SyncRoutesService,
    Effect.gen(function*() {
      const signal = yield* ShutdownSignal
      const activity = yield* Activity.Activity
      const bearer = yield* BearerCheck
      const { pull, push } = yield* SyncHandlers
      const serve = SyncRoutes.make({
        bodyLimit,
        before: Effect.zipRight(closeConnectionOnShutdown(signal), countRefusals(activity)),
        onDefect: (cause) => logError("unexpected failure while handling a request", cause),
        bearer,
        push,
        pull
      })
      return { serve }
    })
  ).pipe(
    Layer.provide(Layer.mergeAll(layerBearerCheck, layerSyncHandlers, layerShutdownSignal)),
    Layer.provide(Layer.merge(layerClientsOrMemory, layerActivity))
  )

const adminStorageFailed = (what: string) => (error: { readonly message: string }) =>
  Effect.zipRight(
    logError(`${what} failed`, error),
    Effect.fail(new SyncApi.ServerError({ message: `the server could not read ${what}` }))
  )

/**
 * The `admin` group's handlers (who is connected, recent activity), behind the admin check.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerAdminHandlers: Layer.Layer<HttpApiGroup.ApiGroup<"autosync", "admin">, never, HandlerServices> =
  HttpApiBuilder.group(SyncApi.SyncApi, "admin", (handlers) =>
    Effect.gen(function*() {
      const log = yield* MutationLog
      const clients = yield* Clients.Clients
      const activity = yield* Activity.Activity
      const latestSeq = log.latestSeq.pipe(Effect.catchAll(storageFailed))
      return handlers
        .handle("clients", () =>
          Effect.gen(function*() {
            const all = yield* clients.list.pipe(Effect.catchAll(adminStorageFailed("the connected clients")))
            const latest = yield* latestSeq
            return new SyncApi.ClientsResponse({
              latestSeq: latest,
              clients: all.map((c) =>
                new SyncApi.ClientInfo({
                  clientId: c.clientId,
                  tokenId: c.tokenId ?? null,
                  lastPushAt: c.lastPushAt === undefined ? null : new Date(c.lastPushAt),
                  lastPullAt: c.lastPullAt === undefined ? null : new Date(c.lastPullAt),
                  cursor: c.cursor ?? null,
                  lag: c.cursor === undefined ? null : Math.max(0, latest - c.cursor),
                  pushed: c.pushed,
                  pulled: c.pulled
                })
              )
            })
          }))
        .handle("activity", () =>
          Effect.gen(function*() {
            const snapshot = yield* activity.snapshot
            return new SyncApi.ActivityResponse({
              intervalMs: snapshot.intervalMs,
              rejections: snapshot.rejections,
              latestSeq: yield* latestSeq,
              buckets: snapshot.buckets.map((b) =>
                new SyncApi.ActivityBucket({
                  start: new Date(b.start),
                  pushRequests: b.pushRequests,
                  pullRequests: b.pullRequests,
                  pushed: b.pushed,
                  pulled: b.pulled,
                  rejected: b.rejected
                })
              )
            })
          }))
    })).pipe(Layer.provide(layerAdminAuthorization))

/**
 * The `dashboard` group: the page itself (its data comes from the admin endpoints).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDashboard: Layer.Layer<HttpApiGroup.ApiGroup<"autosync", "dashboard">> = HttpApiBuilder.group(
  SyncApi.SyncApi,
  "dashboard",
  (handlers) => Effect.succeed(handlers.handle("dashboard", () => Effect.succeed(Dashboard.html)))
)

/**
 * Every answer with a status >= 400 is counted by `Activity` (the dashboard's refusals), except
 * 499: a client that went away (e.g. an agent stopped during a held pull) was not refused.
 */
const countRefusals = (activity: Activity.Activity["Type"]) =>
  HttpApp.appendPreResponseHandler((_request, response) =>
    response.status >= 400 && response.status !== 499
      ? Effect.as(activity.reject(response.status), response)
      : Effect.succeed(response)
  )

// ----------------------------------------------------------------------------
// bad input → JSON errors
// ----------------------------------------------------------------------------

type ApiError = SyncApi.BadRequest | SyncApi.NotFound | SyncApi.PayloadTooLarge | SyncApi.ServerError

/**
 * The API-wide middleware: `Connection: close` once shutting down, the body limit, and every
 * failure that is not one of the API's own errors turned into one (400 for bodies that are not
 * JSON or do not match the schema, 404, 413; 500 for defects, logged with their cause).
 */
const requestMiddleware = (bodyLimit: number) =>
  HttpApiBuilder.middleware(
    SyncApi.SyncApi,
    Effect.map(Effect.all([ShutdownSignal, Activity.Activity]), ([signal, activity]) => (app) =>
      Effect.gen(function*() {
        yield* closeConnectionOnShutdown(signal)
        yield* countRefusals(activity)
        const tooLarge = SyncRoutes.declaredTooLarge(yield* HttpServerRequest.HttpServerRequest, bodyLimit)
        if (Option.isSome(tooLarge)) return yield* tooLarge.value
        return yield* HttpIncomingMessage.withMaxBodySize(app, Option.some(bodyLimit))
      }).pipe(
        Effect.catchAllCause((cause): Effect.Effect<never, ApiError> => {
          if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
          const error = Cause.squash(cause)
          if (
            error instanceof SyncApi.BadRequest || error instanceof SyncApi.Unauthorized ||
            error instanceof SyncApi.Forbidden || error instanceof SyncApi.NotFound ||
            error instanceof SyncApi.Conflict || error instanceof SyncApi.PayloadTooLarge ||
            error instanceof SyncApi.ServerError
          ) {
            // The API's own errors (some are endpoint-level, hence the untyped re-fail).
            return Effect.failCause(cause as Cause.Cause<never>)
          }
          if (error instanceof HttpApiError.HttpApiDecodeError) {
            return Effect.fail(new SyncApi.BadRequest({ message: SyncRoutes.decodeMessage(error.issues) }))
          }
          if (error instanceof HttpServerError.RouteNotFound) {
            const request = error.request
            return Effect.fail(
              new SyncApi.NotFound({
                message: SyncRoutes.truncate(`no route for ${request.method} ${request.url.split("?")[0]}`)
              })
            )
          }
          if (error instanceof HttpServerError.RequestError) {
            return Effect.fail(SyncRoutes.unreadableBody(error.cause, bodyLimit))
          }
          return Effect.zipRight(
            logError("unexpected failure while handling a request", cause),
            Effect.fail(new SyncApi.ServerError({ message: "internal server error" }))
          )
        })
      ))
  )

// ----------------------------------------------------------------------------
// request log
// ----------------------------------------------------------------------------

/**
 * One log line per request: `METHOD /path?query STATUS DURATIONms`. The query carries no secret
 * (the token is a header) and tells a held pull (`wait_ms`) from a plain one.
 *
 * @since 0.1.0
 * @category middleware
 */
export const requestLogger: <E, R>(app: HttpApp.Default<E, R>) => HttpApp.Default<E, R> = HttpMiddleware.make((app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const started = yield* Clock.currentTimeMillis
    const exit = yield* Effect.exit(app)
    const status = Exit.isSuccess(exit)
      ? exit.value.status
      : HttpServerError.causeResponseStripped(exit.cause)[0].status
    const elapsed = (yield* Clock.currentTimeMillis) - started
    yield* Effect.logInfo(`${request.method} ${request.url} ${status} ${elapsed}ms`)
    return yield* exit
  })
)

// ----------------------------------------------------------------------------
// layers
// ----------------------------------------------------------------------------

/**
 * The whole API (handlers, security, error mapping, body limit), ready for `HttpApiBuilder.serve`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerApi = (
  options: Pick<Options, "bodyLimit"> = {}
): Layer.Layer<HttpApi.Api, never, MutationLog | Tokens.Tokens> =>
  HttpApiBuilder.api(SyncApi.SyncApi).pipe(
    Layer.provide(Layer.mergeAll(layerHandlers, layerAdminHandlers, layerDashboard)),
    Layer.provide(requestMiddleware(options.bodyLimit ?? defaults.bodyLimit)),
    Layer.provide(Layer.merge(layerClientsOrMemory, layerActivity)),
    Layer.provide(layerShutdownSignal)
  )

/**
 * Serves the API on the `HttpServer` provided from outside (e.g. `NodeHttpServer.layerTest`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerHttp = (
  options: Omit<Options, "port" | "host"> = {}
): Layer.Layer<
  never,
  never,
  MutationLog | Tokens.Tokens | HttpServer.HttpServer | HttpRouter.HttpRouter.DefaultServices
> =>
  // As `HttpApiBuilder.serve`, with push and pull in front of the API's app: inside the served
  // app, so the response hooks they set apply (a middleware's answers would bypass them).
  Effect.all([HttpApiBuilder.httpApp, SyncRoutesService]).pipe(
    Effect.map(([api, routes]) =>
      HttpServer.serve(routes.serve(api), (app) =>
        ServerMetrics.track(
          (options.logRequests ?? defaults.logRequests)
            ? requestLogger(Admission.middleware(app))
            : Admission.middleware(app)
        ))
    ),
    Layer.unwrapEffect,
    Layer.provide([HttpApiBuilder.Router.Live, HttpApiBuilder.Middleware.layer]),
    Layer.provide(Layer.merge(layerApi(options), layerSyncRoutes(options.bodyLimit ?? defaults.bodyLimit))),
    Layer.provide(Admission.layer(options)),
    Layer.provide(options.metrics === undefined ? Layer.empty : ServerMetrics.layerRoute(options.metrics)),
    Layer.merge(Compactor.layer({ threshold: options.compactThreshold, interval: options.compactInterval }))
  )

/**
 * Serves the API with `NodeHttpServer` on `host:port`. The `HttpServer` it provides tells the
 * address actually bound (useful with port 0). Closing the layer shuts down gracefully.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<HttpServer.HttpServer, HttpServerError.ServeError, MutationLog | Tokens.Tokens> =>
  layerHttp(options).pipe(
    Layer.provideMerge(
      NodeHttpServer.layer(() => createServer(), {
        port: options.port ?? defaults.port,
        host: options.host ?? defaults.host
      })
    )
  )

/**
 * A server over one SQLite file (created and migrated when needed): `autosync serve --db FILE`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSqlite = (
  options: Options & { readonly file: string }
): Layer.Layer<
  HttpServer.HttpServer,
  HttpServerError.ServeError | SqlError | SqliteMutationLog.ServerFileError | Migrator.MigrationError | MutationLogError
> =>
  layer(options).pipe(
    Layer.provide(Layer.mergeAll(SqliteMutationLog.layer(), Tokens.layer, Clients.layer())),
    Layer.provide(SqliteMutationLog.layerClient(options))
  )

/**
 * A server over a PostgreSQL database (migrated when needed): `autosync serve --database-url URL`.
 * Several such servers may share one database.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPg = (
  options: Options & PgMutationLog.Options & {
    readonly url: Redacted.Redacted | string
    /** The size of the connection pool. Defaults to 10. */
    readonly maxConnections?: number | undefined
  }
): Layer.Layer<
  HttpServer.HttpServer,
  HttpServerError.ServeError | SqlError | Migrator.MigrationError | MutationLogError
> =>
  layer(options).pipe(
    Layer.provide(Layer.mergeAll(PgMutationLog.layer(options), Tokens.layer, Clients.layer())),
    Layer.provide(PgMutationLog.layerClient(options))
  )
