/**
 * End to end over raw HTTP (what the typed client would refuse to send): a real `SyncServer` on
 * 127.0.0.1 and a free port, over a real SQLite file in a temporary directory.
 */
import { Mutation } from "@autosync/core"
import { MutationLog, SyncServer, Tokens } from "@autosync/server"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpClient from "@effect/platform/HttpClient"
import { assert, describe, it } from "@effect/vitest"
import {
  Context,
  Duration,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  HashMap,
  Layer,
  Logger,
  Option,
  Schema,
  Scope
} from "effect"
import { layerSqliteServer, request, TestServer } from "./helpers.js"

const wire = (clientSeq: number, overrides: Record<string, unknown> = {}) => ({
  client_seq: clientSeq,
  project: "p1",
  entity: "document",
  entity_key: `k${clientSeq}`,
  op: "upsert",
  payload: { n: clientSeq },
  ...overrides
})

const batch = (mutations: Array<unknown>, clientId = "c1") => JSON.stringify({ client_id: clientId, mutations })

const e2e = (title: string, body: Effect.Effect<void, never, TestServer>, options: SyncServer.Options = {}) =>
  it.live(title, () => body.pipe(Effect.provide(layerSqliteServer(options))))

/** The whole log as the given token sees it. */
const pullAll = (url: string, token: string) =>
  Effect.map(request(`${url}/v1/pull?since_seq=0&limit=1000`, { token }), (r) => r.json)

const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth)

describe("SyncServer", () => {
  e2e(
    "push and pull round trip, in the wire's snake_case JSON",
    Effect.gen(function*() {
      const { token, url } = yield* TestServer
      const t = yield* token(["p1"])
      const pushed = yield* request(`${url}/v1/push`, { token: t, body: batch([wire(1), wire(2)]) })
      assert.strictEqual(pushed.status, 200)
      assert.include(pushed.contentType ?? "", "application/json")
      assert.deepStrictEqual(pushed.json, { accepted_seqs: [1, 2] })
      const pulled = yield* request(`${url}/v1/pull?since_seq=0&limit=10`, { token: t })
      assert.strictEqual(pulled.status, 200)
      assert.deepStrictEqual(Object.keys(pulled.json), ["mutations", "has_more", "latest_seq"])
      assert.strictEqual(pulled.json.has_more, false)
      assert.strictEqual(pulled.json.latest_seq, 2)
      const [first] = pulled.json.mutations
      assert.deepStrictEqual(Object.keys(first), [
        "seq",
        "project",
        "entity",
        "entity_key",
        "op",
        "payload",
        "occurred_at"
      ])
      assert.deepStrictEqual({ ...first, occurred_at: undefined }, {
        seq: 1,
        project: "p1",
        entity: "document",
        entity_key: "k1",
        op: "upsert",
        payload: { n: 1 },
        occurred_at: undefined
      })
      assert.match(first.occurred_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    })
  )

  e2e(
    "a retried push stores nothing twice",
    Effect.gen(function*() {
      const { token, url } = yield* TestServer
      const t = yield* token(["p1"])
      const body = batch([wire(1), wire(2)])
      const first = yield* request(`${url}/v1/push`, { token: t, body })
      const again = yield* request(`${url}/v1/push`, { token: t, body })
      assert.deepStrictEqual(again.json, first.json)
      const all = yield* pullAll(url, t)
      assert.deepStrictEqual(all.mutations.map((m: any) => m.seq), [1, 2])
    })
  )

  e2e(
    "an identity conflict is 409 with the seq, and stores nothing of the batch",
    Effect.gen(function*() {
      const { token, url } = yield* TestServer
      const t = yield* token(["p1"])
      yield* request(`${url}/v1/push`, { token: t, body: batch([wire(1)]) })
      const conflict = yield* request(`${url}/v1/push`, {
        token: t,
        body: batch([wire(2), wire(1, { payload: { n: 99 } })])
      })
      assert.strictEqual(conflict.status, 409)
      assert.strictEqual(conflict.json._tag, "Conflict")
      assert.strictEqual(conflict.json.seq, 1)
      assert.include(conflict.json.message, "server seq 1")
      assert.strictEqual((yield* pullAll(url, t)).latest_seq, 1)
    })
  )

  e2e(
    "401 for a missing, empty, unknown or non-bearer token, with a JSON message; nothing stored",
    Effect.gen(function*() {
      const { token, url } = yield* TestServer
      const good = yield* token(["p1"])
      const cases: Array<Record<string, string>> = [
        {},
        { authorization: "Bearer " },
        { authorization: "Bearer as_not-a-real-token" },
        { authorization: `Basic ${good}` },
        { authorization: good }
      ]
      for (const headers of cases) {
        for (const path of ["/v1/push", "/v1/pull?since_seq=0"]) {
          const res = yield* request(`${url}${path}`, {
            headers,
            ...(path === "/v1/push" ? { body: batch([wire(1)]) } : {})
          })
          assert.strictEqual(res.status, 401, `${path} ${JSON.stringify(headers)}`)
          assert.strictEqual(res.json._tag, "Unauthorized")
          assert.isString(res.json.message)
        }
      }
      assert.strictEqual((yield* pullAll(url, good)).latest_seq, 0)
    })
  )

  e2e(
    "403 for a project the token may not use; nothing of the batch is stored; pulls see only allowed projects",
    Effect.gen(function*() {
      const { token, url } = yield* TestServer
      const p1 = yield* token(["p1"])
      const both = yield* token(["p1", "p2"])
      const refused = yield* request(`${url}/v1/push`, {
        token: p1,
        body: batch([wire(1), wire(2, { project: "p2" })])
      })
      assert.strictEqual(refused.status, 403)
      assert.strictEqual(refused.json._tag, "Forbidden")
      assert.include(refused.json.message, "\"p2\"")
      assert.strictEqual((yield* pullAll(url, both)).latest_seq, 0)
      yield* request(`${url}/v1/push`, { token: both, body: batch([wire(1), wire(2, { project: "p2" }), wire(3)]) })
      const seen = yield* pullAll(url, p1)
      assert.deepStrictEqual(seen.mutations.map((m: any) => [m.seq, m.project]), [[1, "p1"], [3, "p1"]])
    })
  )

  e2e(
    "bad input is 400 with a JSON message naming the problem, never 500, and changes nothing",
    Effect.gen(function*() {
      const { token, url } = yield* TestServer
      const t = yield* token(["p1"])
      const push = (body: string, headers: Record<string, string> = {}) => ({ path: "/v1/push", body, headers })
      const pull = (query: string) => ({ path: `/v1/pull?${query}`, body: undefined, headers: {} })
      const cases: Array<[string, { path: string; body: string | undefined; headers: Record<string, string> }]> = [
        ["not valid JSON", push("{\"client_id\": ")],
        ["must be a JSON object", push("")],
        ["is missing", push("{}")],
        ["must be a JSON object", push("[]")],
        ["client_id must be", push(batch([wire(1)], "bad id!"))],
        ["client_id", push(JSON.stringify({ client_id: 7, mutations: [] }))],
        ["mutations", push(JSON.stringify({ client_id: "c1", mutations: "all of them" }))],
        ["mutations[0].entity_key", push(batch([wire(1, { entity_key: 42 })]))],
        ["mutations[1].client_seq", push(batch([wire(1), wire(0)]))],
        ["mutations[0].client_seq", push(batch([wire(1.5)]))],
        ["mutations[0].client_seq", push(batch([wire(-1)]))],
        ["mutations[0].client_seq", push(batch([wire(2 ** 53)]))],
        ["mutations[0].client_seq", push(batch([{ ...wire(1), client_seq: "1" }]))],
        ["project must not be empty", push(batch([wire(1, { project: "" })]))],
        ["op must not be empty", push(batch([wire(1, { op: "" })]))],
        [
          "mutations[0].payload: payload nests deeper than 64 levels",
          push(batch([wire(1, { payload: JSON.parse(nested(65)) })]))
        ],
        ["must be a JSON object", push(nested(100_000))],
        ["the request body nests deeper than 200 levels", push("{\"a\":".repeat(100_000) + "1" + "}".repeat(100_000))],
        [
          "the request body nests deeper than 200 levels",
          push(`{"client_id":"c1","mutations":[${JSON.stringify(wire(1)).replace("{\"n\":1}", nested(50_000))}]}`)
        ],
        ["NUL", push(batch([wire(1, { payload: { s: "a\u0000b" } })]))],
        ["NUL", push(batch([wire(1, { entity_key: "k\u0000" })]))],
        [
          "lone UTF-16 surrogate",
          push(`{"client_id":"c1","mutations":[${JSON.stringify(wire(1)).replace("{\"n\":1}", "\"\\ud800\"")}]}`)
        ],
        [
          "lone UTF-16 surrogate",
          push(`{"client_id":"c1","mutations":[${JSON.stringify(wire(1)).replace("{\"n\":1}", "{\"\\udc00x\":1}")}]}`)
        ],
        ["lone UTF-16 surrogate", push(batch([wire(1, { project: "p\udbff" })]))],
        [
          "safe-integer",
          push(`{"client_id":"c1","mutations":[${JSON.stringify(wire(1)).replace("{\"n\":1}", "9007199254740993")}]}`)
        ],
        [
          "not a finite number",
          push(`{"client_id":"c1","mutations":[${JSON.stringify(wire(1)).replace("{\"n\":1}", "[1e400]")}]}`)
        ],
        ["must be a JSON object", push(batch([wire(1)]), { "content-type": "text/plain" })],
        ["since_seq: is missing", pull("")],
        ["since_seq must be >= 0", pull("since_seq=-1")],
        ["since_seq", pull("since_seq=abc")],
        ["since_seq must be an integer", pull("since_seq=1.5")],
        ["since_seq must be an integer", pull("since_seq=99999999999999999999")],
        ["since_seq", pull("since_seq=1&since_seq=2")],
        ["limit must be >= 1", pull("since_seq=0&limit=0")],
        ["limit", pull("since_seq=0&limit=-5")],
        ["limit", pull("since_seq=0&limit=ten")],
        ["wait_ms must be >= 0", pull("since_seq=0&wait_ms=-1")],
        ["client_id must be 1-128 characters", pull("since_seq=0&exclude_client_id=%20bad%20id")]
      ]
      for (const [expected, c] of cases) {
        const res = yield* request(`${url}${c.path}`, {
          token: t,
          headers: c.headers,
          ...(c.body === undefined ? {} : { body: c.body })
        })
        const label = `${c.path} ${(c.body ?? "").slice(0, 80)}`
        assert.strictEqual(res.status, 400, `${label} → ${res.status} ${res.text.slice(0, 200)}`)
        assert.strictEqual(res.json?._tag, "BadRequest", label)
        assert.include(res.json.message, expected, label)
        assert.isBelow(res.json.message.length, 2000, label)
      }
      assert.strictEqual((yield* pullAll(url, t)).latest_seq, 0)
    })
  )

  e2e(
    "a limit or wait_ms above its cap is clamped, not refused",
    Effect.gen(function*() {
      const { token, url } = yield* TestServer
      const t = yield* token(["p1"])
      yield* request(`${url}/v1/push`, { token: t, body: batch([wire(1)]) })
      const [elapsed, res] = yield* Effect.timed(
        request(`${url}/v1/pull?since_seq=0&limit=5000&wait_ms=999999999`, { token: t })
      )
      assert.strictEqual(res.status, 200)
      assert.deepStrictEqual(res.json.mutations.map((m: any) => m.seq), [1])
      assert.isBelow(Duration.toMillis(elapsed), 15_000) // answered, not held for the 30 s cap
    })
  )

  e2e(
    "unknown routes and methods are 404 with a JSON message",
    Effect.gen(function*() {
      const { url } = yield* TestServer
      for (
        const [method, path] of [["GET", "/"], ["GET", "/v1/nothing"], ["GET", "/v1/push"], ["DELETE", "/v1/pull"]]
      ) {
        const res = yield* request(`${url}${path}`, { method })
        assert.strictEqual(res.status, 404, `${method} ${path}`)
        assert.strictEqual(res.json._tag, "NotFound")
        assert.include(res.json.message, path)
      }
    })
  )

  e2e(
    "health needs no token",
    Effect.gen(function*() {
      const { url } = yield* TestServer
      const res = yield* request(`${url}/v1/health`)
      assert.strictEqual(res.status, 200)
      assert.deepStrictEqual(res.json, { status: "ok" })
    })
  )

  e2e(
    "a body over the configured limit is 413 with a JSON message; nothing stored",
    Effect.gen(function*() {
      const { token, url } = yield* TestServer
      const t = yield* token(["p1"])
      const big = batch([wire(1, { payload: "x".repeat(2000) })])
      const res = yield* request(`${url}/v1/push`, { token: t, body: big })
      assert.strictEqual(res.status, 413)
      assert.strictEqual(res.json._tag, "PayloadTooLarge")
      assert.include(res.json.message, "1024")
      // Below the limit is fine.
      assert.strictEqual((yield* request(`${url}/v1/push`, { token: t, body: batch([wire(2)]) })).status, 200)
      assert.deepStrictEqual((yield* pullAll(url, t)).mutations.map((m: any) => m.seq), [1])
    }),
    { bodyLimit: 1024 }
  )

  e2e(
    "the default body limit is 8 MiB",
    Effect.gen(function*() {
      const { token, url } = yield* TestServer
      const t = yield* token(["p1"])
      const over = batch([wire(1, { payload: "x".repeat(SyncServer.defaults.bodyLimit) })])
      assert.strictEqual((yield* request(`${url}/v1/push`, { token: t, body: over })).status, 413)
      const under = batch([wire(1, { payload: "x".repeat(SyncServer.defaults.bodyLimit - 1000) })])
      assert.strictEqual((yield* request(`${url}/v1/push`, { token: t, body: under })).status, 200)
    })
  )

  e2e(
    "long-poll: held until a push of the token's projects lands; other projects' pushes do not end it",
    Effect.gen(function*() {
      const { token, url } = yield* TestServer
      const p1 = yield* token(["p1"])
      const p2 = yield* token(["p2"])
      // Nothing new for p1 during the wait: pushes to p2 wake the server, but the pull holds on.
      const quiet = yield* Effect.fork(Effect.timed(request(`${url}/v1/pull?since_seq=0&wait_ms=500`, { token: p1 })))
      yield* Effect.sleep("100 millis")
      yield* request(`${url}/v1/push`, { token: p2, body: batch([wire(1, { project: "p2" })]) })
      const [quietElapsed, quietRes] = yield* Fiber.join(quiet)
      assert.strictEqual(quietRes.status, 200)
      assert.deepStrictEqual(quietRes.json, { mutations: [], has_more: false, latest_seq: 1 })
      assert.isAtLeast(Duration.toMillis(quietElapsed), 450)
      // A push to p1 answers a held pull at once.
      const held = yield* Effect.fork(Effect.timed(request(`${url}/v1/pull?since_seq=0&wait_ms=30000`, { token: p1 })))
      yield* Effect.sleep("200 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(held)))
      yield* request(`${url}/v1/push`, { token: p1, body: batch([wire(2)]) })
      const [elapsed, res] = yield* Fiber.join(held)
      assert.deepStrictEqual(res.json.mutations.map((m: any) => m.seq), [2])
      assert.isBelow(Duration.toMillis(elapsed), 15_000) // woken by the push, not by the 30 s wait
    })
  )

  it.live("graceful shutdown: held pulls answer at once, then the port closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const server = yield* Layer.buildWithScope(layerSqliteServer(), scope).pipe(
        Effect.map(Context.get(TestServer))
      )
      const t = yield* server.token(["p1"])
      const held = yield* Effect.fork(
        Effect.timed(request(`${server.url}/v1/pull?since_seq=0&wait_ms=30000`, { token: t }))
      )
      yield* Effect.sleep("200 millis")
      const [closed] = yield* Effect.timed(Scope.close(scope, Exit.void))
      const [elapsed, res] = yield* Fiber.join(held)
      assert.strictEqual(res.status, 200)
      assert.deepStrictEqual(res.json.mutations, [])
      // With `Connection: close`, so no kept-alive socket holds the server open.
      assert.strictEqual(res.connection, "close")
      // Well before the 30 s wait: the shutdown answered it.
      assert.isBelow(Duration.toMillis(elapsed), 15_000)
      assert.isBelow(Duration.toMillis(closed), 15_000)
      const after = yield* Effect.exit(request(`${server.url}/v1/health`))
      assert.isTrue(Exit.isFailure(after), "the server still answers after shutdown")
    }))

  it.live("one log line per request: method, path and query, status, duration; never the token", () => {
    const lines: Array<string> = []
    const capture = Logger.make(({ annotations, message }) => {
      lines.push(`${JSON.stringify(message)} ${JSON.stringify(Object.fromEntries(HashMap.toEntries(annotations)))}`)
    })
    return Effect.gen(function*() {
      const { token, url } = yield* TestServer
      const t = yield* token(["p1"])
      yield* request(`${url}/v1/push`, { token: t, body: batch([wire(1)]) })
      yield* request(`${url}/v1/pull?since_seq=0`, { token: t })
      yield* request(`${url}/v1/pull?since_seq=0`, { token: "as_wrong" })
      const http = lines.filter((l) => l.includes("/v1/"))
      // The line is the message itself (no annotations to spread over more lines).
      assert.deepStrictEqual(
        http.map((l) => l.replace(/ \d+ms"/, " Nms\"")),
        [
          "[\"POST /v1/push 200 Nms\"] {}",
          "[\"GET /v1/pull?since_seq=0 200 Nms\"] {}",
          "[\"GET /v1/pull?since_seq=0 401 Nms\"] {}"
        ]
      )
      for (const line of lines) {
        assert.notInclude(line, t)
        assert.notInclude(line, "as_wrong")
      }
    }).pipe(
      Effect.provide(layerSqliteServer({ logRequests: true })),
      Effect.provide(Logger.replace(Logger.defaultLogger, capture))
    )
  })

  it.live("layerHttp serves on an HttpServer from outside, e.g. NodeHttpServer.layerTest", () =>
    Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const health = yield* client.get("/v1/health")
      assert.strictEqual(health.status, 200)
      assert.deepStrictEqual(yield* health.json, { status: "ok" })
      const unauthorized = yield* client.get("/v1/pull?since_seq=0")
      assert.strictEqual(unauthorized.status, 401)
    }).pipe(
      Effect.provide(
        SyncServer.layerHttp({ logRequests: false }).pipe(
          Layer.provideMerge(NodeHttpServer.layerTest),
          Layer.provide(Layer.merge(MutationLog.layerMemory, Tokens.layerMemory))
        )
      )
    ))

  e2e(
    "pull answers are the protocol's own encoding, for random entries (unicode, escapes, numbers, nesting)",
    Effect.gen(function*() {
      const { token, url } = yield* TestServer
      const t = yield* token(["p1"])
      const text = fc.fullUnicodeString({ minLength: 1, maxLength: 12 }).filter((x) =>
        Mutation.payloadProblem(x) === undefined
      )
      const arbitrary = fc.record({
        entity: text,
        entityKey: text,
        op: text,
        payload: fc.jsonValue({ maxDepth: 4 }).filter((p) => Mutation.payloadProblem(p) === undefined)
      })
      const entries = fc.sample(arbitrary, { numRuns: 300, seed: 7 }).map((e, i) => ({ ...e, clientSeq: i + 1 }))
      for (let i = 0; i < entries.length; i += 100) {
        const chunk = entries.slice(i, i + 100)
        const pushed = yield* request(`${url}/v1/push`, {
          token: t,
          body: batch(
            chunk.map((e) =>
              wire(e.clientSeq, { entity: e.entity, entity_key: e.entityKey, op: e.op, payload: e.payload })
            )
          )
        })
        assert.strictEqual(pushed.status, 200, pushed.text)
      }
      const decode = Schema.decodeUnknownSync(Mutation.PullResponse)
      const encode = Schema.encodeSync(Mutation.PullResponse)
      let cursor = 0
      const seen: Array<any> = []
      while (true) {
        const page = yield* request(`${url}/v1/pull?since_seq=${cursor}&limit=70`, { token: t })
        assert.strictEqual(page.status, 200)
        assert.include(page.contentType ?? "", "application/json")
        assert.deepStrictEqual(page.json, JSON.parse(JSON.stringify(encode(decode(page.json)))))
        seen.push(...page.json.mutations)
        if (!page.json.has_more) break
        cursor = page.json.mutations[page.json.mutations.length - 1].seq
      }
      assert.deepStrictEqual(
        seen.map(({ occurred_at: _, ...m }) => m),
        entries.map((e) => ({
          seq: e.clientSeq,
          project: "p1",
          entity: e.entity,
          entity_key: e.entityKey,
          op: e.op,
          payload: JSON.parse(JSON.stringify(e.payload))
        }))
      )
    })
  )
})
