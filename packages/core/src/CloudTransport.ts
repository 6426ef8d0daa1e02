/**
 * The cloud side as the manager sees it: push a batch of local writes, pull the server's log
 * by seq. `layerMemory` is an in-process server with the same rules as the real one: seqs
 * assigned in order, `(clientId, clientSeq)` deduplicated (a retry gets its first seq back, a
 * different mutation under a used identity is refused with 409), per-token project policy and
 * paged pulls. Several replicas can share one `MemoryServer`, so convergence is testable
 * without I/O.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { PullResponse, PushResult } from "./Mutation.js"
import { PulledMutation, PushBatch } from "./Mutation.js"

/**
 * A failed push or pull.
 * - `auth_required`: the server refused the credentials (401).
 * - `policy_forbidden`: the token may not touch a project of the batch (403).
 * - `identity_conflict`: a `(clientId, clientSeq)` pushed before with other content (409): the
 *   database file was copied, or shares its identity with another replica (`autosync reidentify`).
 * - `transport_failed`: anything else: unreachable, timeout, 4xx/5xx, a malformed response.
 *
 * @since 0.1.0
 * @category errors
 */
export class TransportError extends Schema.TaggedError<TransportError>()("TransportError", {
  reason: Schema.Literal("auth_required", "policy_forbidden", "identity_conflict", "transport_failed"),
  status: Schema.optional(Schema.Number),
  message: Schema.String
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

interface LogRow {
  readonly clientId: string
  readonly clientSeq: number
  readonly fingerprint: string
  readonly mutation: PulledMutation
}

/**
 * An in-process sync server. Its state is plain data so tests can inspect it.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryServer {
  /** The log in seq order. */
  readonly log: () => ReadonlyArray<PulledMutation>
  /** The seq last assigned (0 when empty). */
  readonly latestSeq: () => number
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

const fingerprint = (m: PushBatch["mutations"][number]) =>
  JSON.stringify([m.project, m.entity, m.entityKey, m.op, m.payload])

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
export const makeMemoryServer: Effect.Effect<MemoryServer> = Effect.sync(() => {
  const log: Array<LogRow> = []
  const byIdentity = new Map<string, LogRow>()
  let waiters: Array<Deferred.Deferred<void>> = []

  const push = (batch: PushBatch, allowed?: ReadonlySet<string>) =>
    Effect.gen(function*() {
      // Checked as the wire would check it: encoded (refinements), then decoded (a clean copy).
      const decoded = yield* Schema.encodeUnknown(PushBatch)(batch).pipe(
        Effect.flatMap(Schema.decode(PushBatch)),
        Effect.mapError((e) => badRequest(ParseResult.TreeFormatter.formatErrorSync(e)))
      )
      const forbidden = decoded.mutations.find((m) => allowed !== undefined && !allowed.has(m.project))
      if (forbidden) {
        return yield* new TransportError({
          reason: "policy_forbidden",
          status: 403,
          message: `project ${JSON.stringify(forbidden.project)} is not allowed for this token`
        })
      }
      // Check every identity before writing anything: a refused batch stores nothing. The same
      // client_seq twice in one batch must carry the same content too.
      const inBatch = new Map<number, string>()
      for (const m of decoded.mutations) {
        const earlier = inBatch.get(m.clientSeq)
        if (earlier !== undefined && earlier !== fingerprint(m)) {
          return yield* new TransportError({
            reason: "identity_conflict",
            status: 409,
            message: `client_seq ${m.clientSeq} appears twice in the batch with different content`
          })
        }
        inBatch.set(m.clientSeq, fingerprint(m))
        const existing = byIdentity.get(`${decoded.clientId}\u0000${m.clientSeq}`)
        if (existing && existing.fingerprint !== fingerprint(m)) {
          return yield* new TransportError({
            reason: "identity_conflict",
            status: 409,
            message:
              `client_seq ${m.clientSeq} of client ${decoded.clientId} was already pushed with different content (server seq ${existing.mutation.seq})`
          })
        }
      }
      const occurredAt = new Date(yield* Effect.clockWith((c) => c.currentTimeMillis))
      const acceptedSeqs: Array<number> = []
      for (const m of decoded.mutations) {
        const identity = `${decoded.clientId}\u0000${m.clientSeq}`
        const existing = byIdentity.get(identity)
        if (existing) {
          acceptedSeqs.push(existing.mutation.seq)
          continue
        }
        const row: LogRow = {
          clientId: decoded.clientId,
          clientSeq: m.clientSeq,
          fingerprint: fingerprint(m),
          mutation: {
            seq: log.length + 1,
            project: m.project,
            entity: m.entity,
            entityKey: m.entityKey,
            op: m.op,
            payload: m.payload,
            occurredAt
          }
        }
        log.push(row)
        byIdentity.set(identity, row)
        acceptedSeqs.push(row.mutation.seq)
      }
      const woken = waiters
      waiters = []
      yield* Effect.forEach(woken, (d) => Deferred.succeed(d, undefined), { discard: true })
      return { acceptedSeqs }
    })

  const page = (sinceSeq: number, limit: number, allowed?: ReadonlySet<string>, exclude?: string): PullResponse => {
    const mutations: Array<PulledMutation> = []
    let hasMore = false
    for (let i = sinceSeq; i < log.length; i++) {
      const m = log[i].mutation
      if (allowed !== undefined && !allowed.has(m.project)) continue
      if (exclude !== undefined && log[i].clientId === exclude) continue
      if (mutations.length === limit) {
        hasMore = true
        break
      }
      mutations.push(m)
    }
    return { mutations, hasMore, latestSeq: log.length }
  }

  const pull = (sinceSeq: number, limit: number, allowed?: ReadonlySet<string>, options?: PullOptions) =>
    Effect.gen(function*() {
      if (!Number.isSafeInteger(sinceSeq) || sinceSeq < 0) return yield* badRequest(`since_seq must be an integer >= 0`)
      if (!Number.isSafeInteger(limit) || limit < 1) return yield* badRequest(`limit must be an integer >= 1`)
      const size = Math.min(limit, maxPullLimit)
      const read = () => page(sinceSeq, size, allowed, options?.excludeClientId)
      let current = read()
      if (current.mutations.length > 0 || options?.wait === undefined) return current
      // Long-poll: wait for pushes until one brings something to return, or the deadline.
      const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(Duration.decode(options.wait))
      while (current.mutations.length === 0) {
        const remaining = deadline - (yield* Clock.currentTimeMillis)
        if (remaining <= 0) break
        const wake = yield* Deferred.make<void>()
        waiters.push(wake)
        yield* Deferred.await(wake).pipe(Effect.timeoutOption(Duration.millis(remaining)))
        waiters = waiters.filter((d) => d !== wake)
        current = read()
      }
      return current
    })

  return {
    log: () => log.map((r) => r.mutation),
    latestSeq: () => log.length,
    push,
    pull
  }
})

/**
 * A `CloudTransport` over an in-process server. `allowedProjects` plays the token's policy:
 * pushes to other projects fail with `policy_forbidden`, pulls see only these projects. Its
 * `health` always answers.
 *
 * @since 0.1.0
 * @category constructors
 */
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
