/**
 * `HttpCloudTransport` against a scripted `node:http` server: what it sends, and how every kind
 * of failure becomes a `TransportError`. (Its conformance with the real server is proven by the
 * shared `CloudTransportSuite` of @autosync/testkit, run in @autosync/server's tests.)
 */
import { CloudTransport } from "@autosync/core"
import { HttpCloudTransport } from "@autosync/http"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Exit, Layer, Redacted } from "effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

interface Seen {
  readonly method: string
  readonly url: string
  readonly authorization: string | undefined
  readonly body: string
}

type Script = (request: Seen, response: ServerResponse) => void

/** A server on 127.0.0.1 that answers with `script` and records what it got. */
const fakeServer = (script: Script) =>
  Effect.acquireRelease(
    Effect.async<{ url: string; seen: Array<Seen>; close: () => void }>((resume) => {
      const seen: Array<Seen> = []
      const server = createServer((req: IncomingMessage, res) => {
        let body = ""
        req.on("data", (chunk) => (body += chunk))
        req.on("end", () => {
          const request = { method: req.method!, url: req.url!, authorization: req.headers.authorization, body }
          seen.push(request)
          script(request, res)
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({
          url: `http://127.0.0.1:${port}`,
          seen,
          close: () => {
            server.closeAllConnections()
            server.close()
          }
        }))
      })
    }),
    (server) => Effect.sync(server.close)
  )

const transportFor = (url: string, options: Partial<HttpCloudTransport.Options> = {}) =>
  Layer.build(HttpCloudTransport.layer({ baseUrl: url, token: "secret-token", ...options })).pipe(
    Effect.map(Context.get(CloudTransport.CloudTransport))
  )

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Script => (_, res) => {
  res.writeHead(status, { "content-type": "application/json", ...headers })
  res.end(JSON.stringify(body))
}

const raw = (status: number, body: string, contentType = "text/html"): Script => (_, res) => {
  res.writeHead(status, { "content-type": contentType })
  res.end(body)
}

const failureOf = <A>(effect: Effect.Effect<A, CloudTransport.TransportError>) =>
  Effect.flatMap(Effect.exit(effect), (exit) =>
    Exit.isFailure(exit) && exit.cause._tag === "Fail"
      ? Effect.succeed(exit.cause.error)
      : Effect.dieMessage(`expected a TransportError, got ${String(exit)}`))

const batch = {
  clientId: "c1",
  mutations: [{ clientSeq: 1, project: "p1", entity: "document", entityKey: "k1", op: "upsert", payload: { a: 1 } }]
}

describe("HttpCloudTransport", () => {
  it.live("push sends the batch as snake_case JSON with the bearer token, and decodes accepted_seqs", () =>
    Effect.gen(function*() {
      const server = yield* fakeServer(json(200, { accepted_seqs: [7] }))
      const transport = yield* transportFor(server.url)
      assert.deepStrictEqual(yield* transport.push(batch), { acceptedSeqs: [7] })
      assert.strictEqual(server.seen.length, 1)
      const [request] = server.seen
      assert.strictEqual(request.method, "POST")
      assert.strictEqual(request.url, "/v1/push")
      assert.strictEqual(request.authorization, "Bearer secret-token")
      assert.deepStrictEqual(JSON.parse(request.body), {
        client_id: "c1",
        mutations: [{
          client_seq: 1,
          project: "p1",
          entity: "document",
          entity_key: "k1",
          op: "upsert",
          payload: { a: 1 }
        }]
      })
    }).pipe(Effect.scoped))

  it.live("pull sends since_seq, limit and wait_ms, and decodes the page", () =>
    Effect.gen(function*() {
      const server = yield* fakeServer(json(200, {
        mutations: [{
          seq: 5,
          project: "p1",
          entity: "document",
          entity_key: "k1",
          op: "upsert",
          payload: [1, "two"],
          occurred_at: "2026-01-02T03:04:05.678Z"
        }],
        has_more: true,
        latest_seq: 9
      }))
      const transport = yield* transportFor(server.url, { token: Redacted.make("redacted-token") })
      const page = yield* transport.pull(4, 1, { wait: "250 millis" })
      assert.deepStrictEqual(page, {
        mutations: [{
          seq: 5,
          project: "p1",
          entity: "document",
          entityKey: "k1",
          op: "upsert",
          payload: [1, "two"],
          occurredAt: new Date("2026-01-02T03:04:05.678Z")
        }],
        hasMore: true,
        latestSeq: 9
      })
      yield* transport.pull(0, 10)
      yield* transport.pull(0, 10, { wait: "1 hour" })
      assert.deepStrictEqual(server.seen.map((s) => [s.method, s.url, s.authorization]), [
        ["GET", "/v1/pull?since_seq=4&limit=1&wait_ms=250", "Bearer redacted-token"],
        ["GET", "/v1/pull?since_seq=0&limit=10&wait_ms=0", "Bearer redacted-token"],
        ["GET", "/v1/pull?since_seq=0&limit=10&wait_ms=30000", "Bearer redacted-token"] // clamped to the cap
      ])
    }).pipe(Effect.scoped))

  const cases: Array<[string, Script, CloudTransport.TransportError["reason"], number | undefined, string]> = [
    ["401 JSON", json(401, { _tag: "Unauthorized", message: "unknown bearer token" }), "auth_required", 401, "unknown"],
    ["401 with no body", raw(401, ""), "auth_required", 401, "401"],
    [
      "403 JSON",
      json(403, { _tag: "Forbidden", message: "project \"p1\" is not allowed" }),
      "policy_forbidden",
      403,
      "p1"
    ],
    ["403 HTML", raw(403, "<h1>Forbidden</h1>"), "policy_forbidden", 403, "403"],
    [
      "409 JSON",
      json(409, { _tag: "Conflict", message: "already pushed (server seq 3)", seq: 3 }),
      "identity_conflict",
      409,
      "server seq 3"
    ],
    ["400 JSON", json(400, { _tag: "BadRequest", message: "mutations[0].op: bad" }), "transport_failed", 400, "op"],
    ["413 JSON", json(413, { _tag: "PayloadTooLarge", message: "too big" }), "transport_failed", 413, "too big"],
    ["500 JSON", json(500, { _tag: "ServerError", message: "storage down" }), "transport_failed", 500, "storage"],
    ["500 HTML", raw(500, "<h1>oops</h1>"), "transport_failed", 500, "500"],
    ["502 empty", raw(502, ""), "transport_failed", 502, "502"],
    ["503 JSON of another shape", json(503, { error: "maintenance" }), "transport_failed", 503, "503"],
    ["200 not JSON", raw(200, "<html>proxy login</html>"), "transport_failed", 200, "malformed"],
    ["200 wrong shape", json(200, { accepted: [1] }), "transport_failed", 200, "malformed"],
    ["200 invalid seqs", json(200, { accepted_seqs: [-1] }), "transport_failed", 200, "malformed"]
  ]
  for (const [title, script, reason, status, message] of cases) {
    it.live(`push: ${title} → ${reason}${status ? ` (${status})` : ""}`, () =>
      Effect.gen(function*() {
        const server = yield* fakeServer(script)
        const transport = yield* transportFor(server.url)
        const error = yield* failureOf(transport.push(batch))
        assert.strictEqual(error.reason, reason)
        assert.strictEqual(error.status, status)
        assert.include(error.message, message)
        assert.notInclude(error.message, "secret-token")
      }).pipe(Effect.scoped))
  }

  describe("flow control: 429, and 503 with Retry-After, are rate_limited with the delay asked for", () => {
    const cases: Array<[string, Script, number, number | undefined]> = [
      [
        "429 JSON, Retry-After 3",
        json(429, { _tag: "TooManyRequests", message: "rate" }, { "retry-after": "3" }),
        429,
        3000
      ],
      ["429 HTML, no Retry-After", raw(429, "<h1>slow down</h1>"), 429, undefined],
      [
        "503 JSON, Retry-After 2",
        json(503, { _tag: "ServiceUnavailable", message: "overloaded" }, { "retry-after": "2" }),
        503,
        2000
      ],
      ["503 of another shape, Retry-After 0", json(503, { error: "maintenance" }, { "retry-after": "0" }), 503, 0]
    ]
    for (const [title, script, status, retryAfterMs] of cases) {
      it.live(`${title} → rate_limited${retryAfterMs === undefined ? "" : ` ${retryAfterMs} ms`}`, () =>
        Effect.gen(function*() {
          const server = yield* fakeServer(script)
          const transport = yield* transportFor(server.url)
          for (const call of [transport.push(batch), transport.pull(0, 10), transport.health!]) {
            const error = yield* failureOf(call as Effect.Effect<unknown, CloudTransport.TransportError>)
            assert.strictEqual(error.reason, "rate_limited")
            assert.strictEqual(error.status, status)
            assert.strictEqual(error.retryAfterMs, retryAfterMs)
          }
        }).pipe(Effect.scoped))
    }

    it.live("a 503 without Retry-After is an ordinary transport_failed", () =>
      Effect.gen(function*() {
        const server = yield* fakeServer(json(503, { _tag: "ServiceUnavailable", message: "down" }))
        const error = yield* failureOf((yield* transportFor(server.url)).push(batch))
        assert.strictEqual(error.reason, "transport_failed")
        assert.strictEqual(error.status, 503)
        assert.isUndefined(error.retryAfterMs)
      }).pipe(Effect.scoped))

    it("Retry-After: whole seconds or an HTTP date; anything else is ignored", () => {
      const now = Date.parse("2026-12-02T12:00:00Z")
      assert.strictEqual(HttpCloudTransport.retryAfterMs("5", now), 5000)
      assert.strictEqual(HttpCloudTransport.retryAfterMs(" 0 ", now), 0)
      assert.strictEqual(HttpCloudTransport.retryAfterMs("Wed, 02 Dec 2026 12:00:07 GMT", now), 7000)
      assert.strictEqual(HttpCloudTransport.retryAfterMs("Wed, 02 Dec 2026 11:00:00 GMT", now), 0)
      assert.strictEqual(HttpCloudTransport.retryAfterMs("99999999", now), 86_400_000) // capped at a day
      assert.isUndefined(HttpCloudTransport.retryAfterMs("-1", now))
      assert.isUndefined(HttpCloudTransport.retryAfterMs("soon", now))
      assert.isUndefined(HttpCloudTransport.retryAfterMs(undefined, now))
    })
  })

  it.live("pull: a malformed page is transport_failed", () =>
    Effect.gen(function*() {
      const server = yield* fakeServer(json(200, { mutations: [{ seq: 0 }], has_more: false, latest_seq: 0 }))
      const error = yield* failureOf((yield* transportFor(server.url)).pull(0, 10))
      assert.strictEqual(error.reason, "transport_failed")
      assert.strictEqual(error.status, 200)
    }).pipe(Effect.scoped))

  it.live("an unreachable server is transport_failed without a status", () =>
    Effect.gen(function*() {
      const server = yield* fakeServer(json(200, {}))
      server.close() // nothing listens on that port any more
      const transport = yield* transportFor(server.url)
      for (const call of [transport.push(batch), transport.pull(0, 10)]) {
        const error = yield* failureOf(call as Effect.Effect<unknown, CloudTransport.TransportError>)
        assert.strictEqual(error.reason, "transport_failed")
        assert.isUndefined(error.status)
        assert.include(error.message, "request failed")
      }
    }).pipe(Effect.scoped))

  it.live("health is GET /v1/health without the token; unreachable it fails without a status", () =>
    Effect.gen(function*() {
      const server = yield* fakeServer(json(200, { status: "ok" }))
      const transport = yield* transportFor(server.url)
      yield* transport.health!
      assert.strictEqual(server.seen[0].method, "GET")
      assert.strictEqual(server.seen[0].url, "/v1/health")
      server.close()
      const error = yield* failureOf(transport.health!)
      assert.strictEqual(error.reason, "transport_failed")
      assert.isUndefined(error.status)
    }).pipe(Effect.scoped))

  it.effect("identity names the server and a hash of the token, never the token", () =>
    Effect.gen(function*() {
      const a = yield* transportFor("http://127.0.0.1:1/", { token: "secret-token" })
      const b = yield* transportFor("http://127.0.0.1:1", { token: "secret-token" })
      const otherToken = yield* transportFor("http://127.0.0.1:1", { token: "other-token" })
      const otherServer = yield* transportFor("http://127.0.0.1:2", { token: "secret-token" })
      assert.strictEqual(a.identity, b.identity)
      assert.notInclude(a.identity!, "secret")
      assert.include(a.identity!, "http://127.0.0.1:1/")
      assert.notStrictEqual(a.identity, otherToken.identity)
      assert.notStrictEqual(a.identity, otherServer.identity)
    }).pipe(Effect.scoped))

  it.live("a request that takes longer than the timeout is transport_failed; a long-poll gets its wait on top", () =>
    Effect.gen(function*() {
      // A plain pull is never answered (only the timeout can end it); a long-poll after 400 ms.
      const server = yield* fakeServer((request, res) => {
        if (!request.url.includes("wait_ms")) return
        setTimeout(() => json(200, { mutations: [], has_more: false, latest_seq: 0 })(request, res), 400)
      })
      const transport = yield* transportFor(server.url, { timeout: "200 millis" })
      const error = yield* failureOf(transport.pull(0, 10))
      assert.strictEqual(error.reason, "transport_failed")
      assert.include(error.message, "timed out")
      // 200 ms + a 10 s wait: the answer at 400 ms is in time (200 ms alone would not be).
      const page = yield* transport.pull(0, 10, { wait: "10 seconds" })
      assert.deepStrictEqual(page, { mutations: [], hasMore: false, latestSeq: 0 })
    }).pipe(Effect.scoped))

  it.live("bad arguments fail with 400 before anything is sent", () =>
    Effect.gen(function*() {
      const server = yield* fakeServer(json(200, { accepted_seqs: [1] }))
      const transport = yield* transportFor(server.url)
      const calls: Array<Effect.Effect<unknown, CloudTransport.TransportError>> = [
        transport.pull(-1, 10),
        transport.pull(0, 0),
        transport.pull(Number.NaN, 10),
        transport.push({ ...batch, clientId: "has spaces" }),
        transport.push({
          ...batch,
          mutations: [{ ...batch.mutations[0], payload: { deep: Number.POSITIVE_INFINITY } }]
        })
      ]
      const errors = []
      for (const call of calls) {
        const error = yield* failureOf(call)
        assert.strictEqual(error.reason, "transport_failed")
        assert.strictEqual(error.status, 400)
        errors.push(error.message)
      }
      // A bad batch is named as the wire spells it.
      assert.include(errors[3], "invalid push request: client_id: client_id must be")
      assert.include(errors[4], "mutations.0.payload")
      assert.include(errors[4], "not a finite number")
      assert.strictEqual(server.seen.length, 0)
    }).pipe(Effect.scoped))

  it.live("layerConfig reads AUTOSYNC_SERVER_URL and AUTOSYNC_TOKEN", () =>
    Effect.gen(function*() {
      const server = yield* fakeServer(json(200, { accepted_seqs: [1] }))
      const provider = ConfigProvider.fromMap(
        new Map([["AUTOSYNC_SERVER_URL", server.url], ["AUTOSYNC_TOKEN", "from-env"]]),
        { pathDelim: "_" } // as in the environment
      )
      const transport = yield* Layer.build(HttpCloudTransport.layerConfig).pipe(
        Effect.map(Context.get(CloudTransport.CloudTransport)),
        Effect.withConfigProvider(provider)
      )
      yield* transport.push(batch)
      assert.strictEqual(server.seen[0].authorization, "Bearer from-env")
      const missing = yield* Effect.exit(
        Layer.build(HttpCloudTransport.layerConfig).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(), { pathDelim: "_" }))
        )
      )
      assert.isTrue(Exit.isFailure(missing))
    }).pipe(Effect.scoped))
})
