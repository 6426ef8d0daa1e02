/**
 * Push and pull, the two requests every replica makes all the time, served in front of the
 * HttpApi app: the same contract (`SyncApi`'s schemas, bearer check, statuses and JSON error
 * bodies), without HttpApi's per-request work (the router, a decoder built per request, the
 * success schema's encoder, the security middleware's layers). The schemas are compiled once
 * here; a request is read, checked once, handled by the server's own push/pull handlers and
 * answered. Every other route (health, admin, dashboard, unknown paths) goes on to the HttpApi
 * app.
 */
import type { Mutation } from "@autosync/core"
import { SyncApi } from "@autosync/http"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { pushBody } from "./wire.js"

/** The answers a sync route may give besides success. */
export type SyncError =
  | SyncApi.BadRequest
  | SyncApi.Unauthorized
  | SyncApi.Forbidden
  | SyncApi.Conflict
  | SyncApi.PayloadTooLarge
  | SyncApi.ServerError

const errorClasses = [
  SyncApi.BadRequest,
  SyncApi.Unauthorized,
  SyncApi.Forbidden,
  SyncApi.Conflict,
  SyncApi.PayloadTooLarge,
  SyncApi.ServerError
] as const

const encodeError = Schema.encodeSync(Schema.Union(...errorClasses))
const statusOf = new Map<unknown, number>(errorClasses.map((c) => [c, HttpApiSchema.getStatusError(c)]))

/** An API error as HttpApi answers it: its status, and its encoded form as JSON. */
export const errorResponse = (error: SyncError): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.unsafeJson(encodeError(error), { status: statusOf.get(error.constructor) ?? 500 })

export const truncate = (s: string, max = 300) => s.length > max ? `${s.slice(0, max)}…` : s

const formatPath = (path: ReadonlyArray<PropertyKey>) =>
  path.reduce<string>(
    (acc, key) => typeof key === "number" ? `${acc}[${key}]` : acc === "" ? String(key) : `${acc}.${String(key)}`,
    ""
  )

/** A schema's complaint as one line: the first issues, each with the path of the field. */
export const decodeMessage = (
  issues: ReadonlyArray<{ readonly path: ReadonlyArray<PropertyKey>; readonly message: string }>
): string => {
  const shown = issues.slice(0, 5).map((issue) =>
    truncate(issue.path.length > 0 ? `${formatPath(issue.path)}: ${issue.message}` : issue.message)
  )
  const more = issues.length > shown.length ? ` (and ${issues.length - shown.length} more)` : ""
  return `invalid request: ${shown.join("; ")}${more}`
}

const causeMessage = (u: unknown): string =>
  typeof u === "object" && u !== null && typeof (u as { readonly message?: unknown }).message === "string"
    ? (u as { readonly message: string }).message
    : String(u)

/** A request body that could not be read: too large (413) or not JSON (400). */
export const unreadableBody = (cause: unknown, bodyLimit: number): SyncApi.PayloadTooLarge | SyncApi.BadRequest =>
  causeMessage(cause) === "maxBytes exceeded"
    ? new SyncApi.PayloadTooLarge({ message: `the request body is larger than ${bodyLimit} bytes` })
    : new SyncApi.BadRequest({ message: truncate(`the request body is not valid JSON: ${causeMessage(cause)}`) })

/** A declared body length over the limit, refused before anything is read. */
export const declaredTooLarge = (
  request: HttpServerRequest.HttpServerRequest,
  bodyLimit: number
): Option.Option<SyncApi.PayloadTooLarge> => {
  const length = request.headers["content-length"]
  return length !== undefined && Number(length) > bodyLimit
    ? Option.some(
      new SyncApi.PayloadTooLarge({ message: `the request body is ${length} bytes; the limit is ${bodyLimit} bytes` })
    )
    : Option.none()
}

const invalid = (error: ParseResult.ParseError) =>
  new SyncApi.BadRequest({ message: decodeMessage(ParseResult.ArrayFormatter.formatErrorSync(error)) })

const decodePush = Schema.decodeUnknownEither(SyncApi.PushBody)
const decodePull = Schema.decodeUnknownEither(SyncApi.PullParams)
// The token as HttpApiSecurity.bearer reads it for the API's routes: the header after "Bearer ".
const bearerOf = (request: HttpServerRequest.HttpServerRequest) =>
  Redacted.make((request.headers.authorization ?? "").slice("Bearer ".length))

/** The id of the request's token (`Tokens.idOf`), for the server's bookkeeping. */
export class TokenId extends Context.Tag("@autosync/server/SyncRoutes/TokenId")<TokenId, string>() {}

/** What a verified token grants a sync route. */
export interface Verified {
  readonly projects: ReadonlySet<string>
  readonly tokenId: string
}

/** What the handlers read from the request's context. */
type RequestContext = SyncApi.AllowedProjects | TokenId | HttpServerRequest.HttpServerRequest

/**
 * The body as the API reads it: JSON unless the request says another type (a `text/…` body is
 * its text, which the schema then refuses as not an object).
 */
const readBody = (request: HttpServerRequest.HttpServerRequest) => {
  const type = request.headers["content-type"]?.toLowerCase()
  return type === undefined || type.includes("application/json") ? request.json : request.text
}

/** A query as the API decodes it: a key given twice is a list (which the schema refuses). */
const queryRecord = (query: string): Record<string, string | Array<string>> => {
  const record: Record<string, string | Array<string>> = {}
  for (const [key, value] of new URLSearchParams(query)) {
    const seen = record[key]
    record[key] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value]
  }
  return record
}

/** What the routes call: the bearer check and the server's handlers. */
export interface Handlers {
  readonly bodyLimit: number
  /** Runs first for every request a sync route serves (e.g. the response hooks the API app sets too). */
  readonly before: Effect.Effect<void>
  /** A defect while serving: log it (the answer is a 500 `ServerError`). */
  readonly onDefect: (cause: Cause.Cause<unknown>) => Effect.Effect<void>
  readonly bearer: (
    token: Redacted.Redacted<string>
  ) => Effect.Effect<Verified, SyncApi.Unauthorized | SyncApi.ServerError>
  readonly push: (
    batch: Mutation.PushBatch
  ) => Effect.Effect<
    ReadonlyArray<number>,
    SyncApi.Forbidden | SyncApi.Conflict | SyncApi.ServerError,
    RequestContext
  >
  readonly pull: (
    params: typeof SyncApi.PullParams.Type
  ) => Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    SyncApi.ServerError,
    RequestContext
  >
}

/**
 * Puts the push and pull routes in front of `app`. A defect is logged (`onDefect`) and answered
 * 500, as the API's own routes answer one; an interruption (the client went away) stays one.
 */
export const make = (handlers: Handlers) => {
  const authorized = <A, E>(
    request: HttpServerRequest.HttpServerRequest,
    effect: Effect.Effect<A, E, RequestContext>
  ) =>
    Effect.flatMap(
      handlers.bearer(bearerOf(request)),
      (verified) =>
        effect.pipe(
          Effect.provideService(SyncApi.AllowedProjects, verified.projects),
          Effect.provideService(TokenId, verified.tokenId)
        )
    )

  // As the API checks them: the declared length, the token, then the body and its schema.
  const push = (request: HttpServerRequest.HttpServerRequest) => {
    const tooLarge = declaredTooLarge(request, handlers.bodyLimit)
    if (Option.isSome(tooLarge)) return Effect.fail(tooLarge.value)
    return authorized(
      request,
      Effect.gen(function*() {
        const body = yield* readBody(request).pipe(
          Effect.catchAll((error) => Effect.fail(unreadableBody(error.cause, handlers.bodyLimit)))
        )
        const batch = decodePush(body)
        if (Either.isLeft(batch)) return yield* invalid(batch.left)
        const seqs = yield* handlers.push(batch.right)
        return HttpServerResponse.text(pushBody(seqs), { contentType: "application/json" })
      })
    )
  }

  const pull = (request: HttpServerRequest.HttpServerRequest) => {
    const query = request.url.indexOf("?")
    const params = decodePull(query < 0 ? {} : queryRecord(request.url.slice(query + 1)))
    return Either.isLeft(params)
      ? authorized(request, Effect.fail(invalid(params.left)))
      : authorized(request, handlers.pull(params.right))
  }

  return <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R | HttpServerRequest.HttpServerRequest> =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const path = request.url.split("?", 1)[0]
      const route = request.method === "POST" && path === "/v1/push"
        ? push(request)
        : request.method === "GET" && path === "/v1/pull"
        ? pull(request)
        : undefined
      if (route === undefined) return app
      // Interruptible, as the router runs the API's handlers (the server runs requests
      // uninterruptibly): a held pull's wait must end by timeout, and when its client goes away.
      const served = Effect.interruptible(HttpIncomingMessage.withMaxBodySize(route, Option.some(handlers.bodyLimit)))
      return Effect.zipRight(handlers.before, served)
        .pipe(
          Effect.catchAllCause((cause) =>
            Cause.isInterruptedOnly(cause) ? Effect.failCause(cause as Cause.Cause<never>) : Either.match(
              Cause.failureOrCause(cause),
              {
                onLeft: (error) => Effect.succeed(errorResponse(error)),
                onRight: (defect) =>
                  Effect.as(
                    handlers.onDefect(defect),
                    errorResponse(new SyncApi.ServerError({ message: "internal server error" }))
                  )
              }
            )
          )
        )
    })
}
