/**
 * The cloud side as the manager sees it: push a batch of local writes, pull the server's log
 * by seq. `layerMemory` is an in-process server following the real one's rules (`LogRules`, the
 * same code): seqs assigned in order, `(clientId, clientSeq)` deduplicated (a retry gets its
 * first seq back, a different mutation under a used identity is refused with 409), per-token
 * project policy, paged and held pulls. Several replicas can share one `MemoryServer`, so convergence is testable
 * without I/O.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as LogRules from "./LogRules.js"
import type { PulledMutation, PullResponse, PushResult } from "./Mutation.js"
import { PushBatch } from "./Mutation.js"

/**
 * A failed push or pull.
 * - `auth_required`: the server refused the credentials (401).
 * - `policy_forbidden`: the token may not touch a project of the batch (403).
 * - `identity_conflict`: a `(clientId, clientSeq)` pushed before with other content (409): the
 *   database file was copied, or shares its identity with another replica (`autosync reidentify`).
 * - `rate_limited`: the server sheds load (429, or 503 with `Retry-After`); `retryAfterMs` is how
 *   long it asked us to wait, when it said.
 * - `transport_failed`: anything else: unreachable, timeout, 4xx/5xx, a malformed response.
 *
 * @since 0.1.0
 * @category errors
 */
export class TransportError extends Schema.TaggedError<TransportError>()("TransportError", {
  reason: Schema.Literal("auth_required", "policy_forbidden", "identity_conflict", "rate_limited", "transport_failed"),
  status: Schema.optional(Schema.Number),
  message: Schema.String,
  /** With `rate_limited`: the server's `Retry-After`, in ms. The manager waits at least this long. */
  retryAfterMs: Schema.optional(Schema.NonNegativeInt)
}) {}

/**
 * @since 0.1.0
 * @category models
 */
export interface PullOptions {
  /** Hold the request until there is something to return or this long has passed (long-poll). */
  readonly wait?: Duration.DurationInput
  /**
   * Leave out the mutations this client pushed (its `PushBatch.clientId`): a replica does not
   * need its own writes back. The page then may skip seqs; when `hasMore` is false it holds
   * every other mutation up to `latestSeq`, so the cursor can move on to `latestSeq`.
   */
  readonly excludeClientId?: string
}

/**
 * @since 0.1.0
 * @category tags
 */
export class CloudTransport extends Context.Tag("@autosync/core/CloudTransport")<CloudTransport, {
  /** Pushes a batch; one server seq per entry, in order. Retrying the same batch is safe. */
  readonly push: (batch: PushBatch) => Effect.Effect<PushResult, TransportError>
  /** The mutations after `sinceSeq`, at most `limit`, in seq order. */
  readonly pull: (
    sinceSeq: number,
    limit: number,
    options?: PullOptions
  ) => Effect.Effect<PullResponse, TransportError>
  /**
   * Whether the server answers at all (`GET /v1/health`), without credentials: a cheap probe
   * the manager sends while it backs off after `transport_failed`, to retry as soon as the
   * server is back. Optional: without it the manager waits out its deadline.
   */
  readonly health?: Effect.Effect<void, TransportError>
  /**
   * Where and as whom this transport talks, e.g. the base URL and a hash of the token (never
   * the token itself). Stored with a failure: a persisted retry deadline is honoured only by
   * a transport with the same identity (a fixed URL or token retries at once).
   */
  readonly identity?: string
}>() {}

/**
 * An in-process sync server: `LogRules.makeMemory` behind the checks a real server makes at its
 * boundary (the wire's schema, the token's projects). Its log is plain data so tests can inspect it.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryServer {
  /** The log in seq order. */
  readonly log: () => ReadonlyArray<PulledMutation>
  /** The seq last assigned (0 when empty). */
  readonly latestSeq: () => number
  /** Compacts the log (`LogRules.compactable`): only the newest row of each key stays. */
  readonly compact: (
    options?: { readonly batchSize?: number | undefined }
  ) => Effect.Effect<LogRules.CompactionReport>
  /** The log's size. */
  readonly stats: () => LogRules.LogStats
  readonly push: (
    batch: PushBatch,
    allowedProjects?: ReadonlySet<string>
  ) => Effect.Effect<PushResult, TransportError>
  readonly pull: (
    sinceSeq: number,
    limit: number,
    allowedProjects?: ReadonlySet<string>,
    options?: PullOptions
  ) => Effect.Effect<PullResponse, TransportError>
}

const badRequest = (message: string) => new TransportError({ reason: "transport_failed", status: 400, message })

/**
 * The largest page a pull returns, whatever `limit` asks.
 *
 * @since 0.1.0
 * @category models
 */
export const maxPullLimit = 1000

/**
 * A new, empty in-process server.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemoryServer: Effect.Effect<MemoryServer> = Effect.map(LogRules.makeMemory, (log) => {
  const push = (batch: PushBatch, allowed?: ReadonlySet<string>) =>
    Effect.gen(function*() {
      // Checked as the wire would check it: encoded (refinements), then decoded.
      const decoded = yield* Schema.encodeUnknown(PushBatch)(batch).pipe(
        Effect.flatMap(Schema.decode(PushBatch)),
        Effect.mapError((e) => badRequest(ParseResult.TreeFormatter.formatErrorSync(e)))
      )
      const refused = LogRules.forbidden(decoded.mutations, allowed)
      if (Option.isSome(refused)) {
        return yield* new TransportError({ reason: "policy_forbidden", status: 403, message: refused.value })
      }
      const acceptedSeqs = yield* log.append(decoded.clientId, decoded.mutations, decoded.ackedThrough).pipe(
        Effect.mapError((conflict) =>
          new TransportError({ reason: "identity_conflict", status: 409, message: conflict.message })
        )
      )
      return { acceptedSeqs }
    })

  const pull = (sinceSeq: number, limit: number, allowed?: ReadonlySet<string>, options?: PullOptions) =>
    Effect.gen(function*() {
      if (!Number.isSafeInteger(sinceSeq) || sinceSeq < 0) return yield* badRequest(`since_seq must be an integer >= 0`)
      if (!Number.isSafeInteger(limit) || limit < 1) return yield* badRequest(`limit must be an integer >= 1`)
      const read = log.since(sinceSeq, allowed, Math.min(limit, maxPullLimit), options?.excludeClientId)
      const page = yield* options?.wait === undefined
        ? read
        : LogRules.hold(read, { awaitAfter: log.awaitAfter, wait: options.wait })
      return LogRules.toPullResponse(page)
    })

  return {
    log: () => log.mutations().map(LogRules.toPulled),
    latestSeq: log.latestSeq,
    compact: log.compact,
    stats: log.stats,
    push,
    pull
  }
})

/**
 * Options of a transport over an in-process server.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryTransportOptions {
  /** The token's policy: pushes to other projects fail with `policy_forbidden`, pulls see only these. */
  readonly allowedProjects?: ReadonlyArray<string>
  /** The transport's `identity` (plays the server URL and token of a real transport). */
  readonly identity?: string
}

/**
 * A `CloudTransport` over an in-process server. `allowedProjects` plays the token's policy:
 * pushes to other projects fail with `policy_forbidden`, pulls see only these projects. Its
 * `health` always answers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromMemoryServer = (
  server: MemoryServer,
  options: MemoryTransportOptions = {}
): CloudTransport["Type"] => {
  const allowed = options.allowedProjects ? new Set(options.allowedProjects) : undefined
  return CloudTransport.of({
    push: (batch) => server.push(batch, allowed),
    pull: (sinceSeq, limit, pullOptions) => server.pull(sinceSeq, limit, allowed, pullOptions),
    health: Effect.void,
    ...(options.identity === undefined ? {} : { identity: options.identity })
  })
}

/**
 * A `CloudTransport` over a fresh in-process server of its own.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<CloudTransport> = Layer.effect(
  CloudTransport,
  Effect.map(makeMemoryServer, (server) => fromMemoryServer(server))
)

/**
 * A `CloudTransport` over a shared in-process server (one per replica in a convergence test).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemoryServer = (
  server: MemoryServer,
  options: MemoryTransportOptions = {}
): Layer.Layer<CloudTransport> => Layer.succeed(CloudTransport, fromMemoryServer(server, options))
