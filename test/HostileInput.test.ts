/**
 * Hostile input against a real `autosync serve` process (body limit 64 KiB, so that oversized
 * bodies are cheap): fast-check generated bodies (random bytes, random JSON, valid batches with
 * one field made invalid: wrong types, empty strings, numbers beyond the safe range, NUL and lone
 * surrogates, payloads nested thousands of levels deep, forbidden projects, conflicting
 * duplicates), oversized bodies, missing and garbage tokens, random query strings for pull,
 * unknown routes and methods, and raw bytes on a TCP socket.
 *
 * Proves: every such request gets a 4xx with a JSON `message` (never a 500, never a dropped
 * connection), the server still answers `/v1/health` afterwards and logged no 5xx, and nothing
 * was stored (the log's latest seq is unchanged).
 */
import * as fc from "fast-check"
import { Agent, request } from "node:http"
import { connect } from "node:net"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { assertBuilt, createToken, type Proc, Processes, startServer, tempDir } from "./support/processes.js"

const bodyLimit = 65_536

interface Reply {
  readonly status: number
  readonly contentType: string
  readonly text: string
}

const agent = new Agent({ keepAlive: true, maxSockets: 4 })

const send = (
  base: string,
  options: {
    readonly method?: string
    readonly path: string
    readonly headers?: Record<string, string>
    readonly body?: string | Buffer
    /** Send the body without Content-Length (chunked). */
    readonly chunked?: boolean
  }
): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const url = new URL(base)
    const body = options.body === undefined ? undefined : Buffer.from(options.body)
    const req = request({
      host: url.hostname,
      port: url.port,
      method: options.method ?? "GET",
      path: options.path,
      agent,
      timeout: 15_000,
      headers: {
        ...(body !== undefined && !options.chunked ? { "content-length": String(body.length) } : {}),
        ...options.headers
      }
    }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers["content-type"] ?? ""),
          text: Buffer.concat(chunks).toString("utf8")
        }))
      res.on("error", reject)
    })
    req.on("timeout", () => req.destroy(new Error("timed out")))
    req.on("error", reject)
    if (body !== undefined && options.chunked) {
      // Several chunks, so that the server sees a streamed body.
      for (let i = 0; i < body.length; i += 16_384) req.write(body.subarray(i, i + 16_384))
      req.end()
    } else req.end(body)
  })

/** A 4xx with a JSON body holding a non-empty `message`; else throws, naming what was sent. */
const expectClientError = (reply: Reply, what: string) => {
  const shown = `${what.slice(0, 300)} → ${reply.status} ${reply.contentType} ${reply.text.slice(0, 300)}`
  if (reply.status < 400 || reply.status > 499) throw new Error(`expected a 4xx: ${shown}`)
  if (!reply.contentType.includes("application/json")) throw new Error(`expected JSON: ${shown}`)
  let message: unknown = undefined
  try {
    message = (JSON.parse(reply.text) as { message?: unknown }).message
  } catch {
    throw new Error(`the body is not JSON: ${shown}`)
  }
  if (typeof message !== "string" || message.length === 0) throw new Error(`no message: ${shown}`)
  return reply.status
}

// ---------------------------------------------------------------------------------------------
// generators
// ---------------------------------------------------------------------------------------------

/** A JSON text nesting `depth` levels of arrays or objects. */
const nested = (depth: number, kind: "array" | "object") =>
  kind === "array" ? "[".repeat(depth) + "]".repeat(depth) : "{\"a\":".repeat(depth) + "1" + "}".repeat(depth)

const safeDecode = (s: string) => {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

const nonString = fc.constantFrom("0", "42", "-1", "1.5", "null", "true", "[]", "{}", "[\"p\"]", "{\"a\":1}")
const badText = fc.oneof(
  nonString,
  fc.constantFrom("\"\"", "\"a\\u0000b\"", "\"\\u0000\"", "\"\\ud800\"", "\"x\\udfffy\"", "\"\\udbff\\udbff\"")
)
const badSeq = fc.oneof(
  fc.constantFrom(
    "0",
    "-1",
    "1.5",
    "\"1\"",
    "null",
    "true",
    "[]",
    "9007199254740993",
    "9007199254740992",
    "1e20",
    "1e308",
    "1e400",
    "-1e400",
    "1e-7"
  ),
  fc.integer({ max: 0 }).map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isSafeInteger(d) || d <= 0).map((d) =>
    JSON.stringify(d)
  )
)
const badPayload = fc.oneof(
  fc.constantFrom(
    "\"\\u0000\"",
    "\"a\\ud800\"",
    "{\"\\ud800\":1}",
    "{\"k\\u0000\":1}",
    "[1,{\"b\":\"\\u0000\"}]",
    "9007199254740993",
    "-9007199254740993",
    "1e300",
    "-1e300",
    "1e400",
    "{\"n\":[1,2,1e400]}"
  ),
  fc.tuple(fc.integer({ min: 65, max: 30_000 }), fc.constantFrom("array" as const, "object" as const)).map((
    [depth, kind]
  ) => nested(depth, kind)),
  fc.integer({ min: 65, max: 199 }).map((depth) => nested(depth, "array"))
)
const badClientId = fc.oneof(
  nonString,
  fc.constantFrom("\"\"", "\"a b\"", "\"é\"", "\"a/b\"", "\"\\u0000\"", JSON.stringify("x".repeat(129))),
  fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !/^[A-Za-z0-9._:-]{1,128}$/.test(s)).map((s) =>
    JSON.stringify(s)
  )
)

type Field = "client_seq" | "project" | "entity" | "entity_key" | "op" | "payload"

/** One way to make a valid batch invalid. */
type Corruption =
  | { readonly kind: "field"; readonly field: Field; readonly raw: string | undefined }
  | { readonly kind: "client_id"; readonly raw: string | undefined }
  | { readonly kind: "mutations"; readonly raw: string | undefined }
  | { readonly kind: "element"; readonly raw: string }
  | { readonly kind: "forbidden"; readonly project: string }
  | { readonly kind: "conflicting_duplicate" }

const corruption: fc.Arbitrary<Corruption> = fc.oneof(
  fc.record({
    kind: fc.constant("field" as const),
    field: fc.constant("client_seq" as const),
    raw: fc.option(badSeq, { nil: undefined })
  }),
  fc.record({
    kind: fc.constant("field" as const),
    field: fc.constantFrom("project" as const, "entity" as const, "entity_key" as const, "op" as const),
    raw: fc.option(badText, { nil: undefined })
  }),
  fc.record({ kind: fc.constant("field" as const), field: fc.constant("payload" as const), raw: badPayload }),
  fc.record({
    kind: fc.constant("field" as const),
    field: fc.constant("payload" as const),
    raw: fc.constant(undefined)
  }),
  fc.record({ kind: fc.constant("client_id" as const), raw: fc.option(badClientId, { nil: undefined }) }),
  fc.record({
    kind: fc.constant("mutations" as const),
    raw: fc.option(fc.constantFrom("null", "{}", "\"[]\"", "42", "{\"0\":{}}"), { nil: undefined })
  }),
  fc.record({ kind: fc.constant("element" as const), raw: fc.constantFrom("null", "42", "\"m\"", "[]", "{}") }),
  fc.record({
    kind: fc.constant("forbidden" as const),
    project: fc.string({ minLength: 1, maxLength: 20 }).filter((s) => s !== "p" && !/[\u0000\ud800-\udfff]/.test(s))
  }),
  fc.constant({ kind: "conflicting_duplicate" as const })
)

const object = (fields: ReadonlyArray<readonly [string, string | undefined]>) =>
  `{${fields.filter(([, v]) => v !== undefined).map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`

let nextClientSeq = 1

/** A batch of 1-3 mutations (fresh client_seqs) with `c` applied to mutation `target`. */
const corruptBatch = (c: Corruption, size: number, target: number) => {
  const mutations = Array.from({ length: size }, () => {
    const seq = nextClientSeq++
    const fields: Array<[Field, string | undefined]> = [
      ["client_seq", String(seq)],
      ["project", "\"p\""],
      ["entity", "\"note\""],
      ["entity_key", JSON.stringify(`k${seq}`)],
      ["op", "\"upsert\""],
      ["payload", JSON.stringify({ n: seq, text: "hostile" })]
    ]
    return fields
  })
  const t = Math.min(target, size - 1)
  let clientId: string | undefined = "\"hostile-client\""
  let mutationsText: string | undefined = undefined
  switch (c.kind) {
    case "field":
      mutations[t] = mutations[t].map(([k, v]) => [k, k === c.field ? c.raw : v])
      break
    case "client_id":
      clientId = c.raw
      break
    case "mutations":
      mutationsText = c.raw
      break
    case "forbidden":
      mutations[t] = mutations[t].map(([k, v]) => [k, k === "project" ? JSON.stringify(c.project) : v])
      break
    case "conflicting_duplicate": {
      const copy = mutations[t].map(([k, v]): [Field, string | undefined] => [
        k,
        k === "payload" ? JSON.stringify({ other: true }) : v
      ])
      mutations.push(copy)
      break
    }
    case "element":
      break
  }
  const elements = mutations.map((m) => object(m))
  if (c.kind === "element") elements.splice(t, 0, c.raw)
  const list = c.kind === "mutations" ? mutationsText : `[${elements.join(",")}]`
  return object([["client_id", clientId], ["mutations", list]])
}

const validBatch = () => {
  const seq = nextClientSeq++
  return JSON.stringify({
    client_id: "hostile-client",
    mutations: [{
      client_seq: seq,
      project: "p",
      entity: "note",
      entity_key: `k${seq}`,
      op: "upsert",
      payload: { seq }
    }]
  })
}

// ---------------------------------------------------------------------------------------------
// the suite
// ---------------------------------------------------------------------------------------------

describe("hostile input against a real server", () => {
  const procs = new Processes()
  const tmp = tempDir("hostile")
  let server: { readonly proc: Proc; readonly url: string }
  let token: string
  let latestBefore = 0
  const statuses = new Map<number, number>()
  let requests = 0
  const serverErrors: Array<string> = []

  const count = (status: number) => {
    requests++
    statuses.set(status, (statuses.get(status) ?? 0) + 1)
  }
  const auth = () => ({ authorization: `Bearer ${token}` })
  const push = (body: string | Buffer, headers: Record<string, string> = { "content-type": "application/json" }) =>
    send(server.url, { method: "POST", path: "/v1/push", headers: { ...auth(), ...headers }, body })
  const latestSeq = async () => {
    const reply = await send(server.url, { path: "/v1/pull?since_seq=0&limit=1", headers: auth() })
    expect(reply.status, reply.text).toBe(200)
    return (JSON.parse(reply.text) as { latest_seq: number }).latest_seq
  }

  beforeAll(async () => {
    assertBuilt()
    const db = tmp.file("server.db")
    token = await createToken(procs, db, ["p"])
    server = await startServer(procs, db, ["--body-limit", String(bodyLimit)])
    server.proc.onLine((line) => {
      if (/ 5\d\d \d+ms$|ERROR/.test(line)) serverErrors.push(line) // the request log: "GET /path 500 3ms"
    })
    // A few valid rows first, so that "nothing stored" is checked against a non-empty log.
    for (let i = 0; i < 3; i++) expect((await push(validBatch())).status).toBe(200)
    latestBefore = await latestSeq()
    expect(latestBefore).toBe(3)
  }, 60_000)

  afterEach(async () => {
    // After every group: the server is up, healthy, logged no 5xx, and stored nothing.
    expect(server.proc.running, server.proc.describe()).toBe(true)
    const health = await send(server.url, { path: "/v1/health" })
    expect(health.status).toBe(200)
    expect(serverErrors).toEqual([])
    expect(await latestSeq()).toBe(latestBefore)
  })

  afterAll(async () => {
    console.log(
      `[e2e hostile] ${requests} hostile requests, answers by status ${
        JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)))
      }; 0 answered 5xx, the log stayed at seq ${latestBefore}`
    )
    agent.destroy()
    await procs.killAll()
    tmp.remove()
  })

  it("random bytes as a push body", { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 2_048 }),
        fc.constantFrom("application/json", "text/plain", "application/octet-stream", undefined),
        async (bytes, contentType) => {
          const reply = await push(Buffer.from(bytes), contentType ? { "content-type": contentType } : {})
          count(expectClientError(reply, `bytes ${Buffer.from(bytes).toString("hex").slice(0, 80)}`))
        }
      ),
      { numRuns: 150 }
    )
  })

  it("random JSON as a push body", { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.jsonValue({ maxDepth: 6 }).filter((v) =>
          typeof v !== "object" || v === null || Array.isArray(v) || !("mutations" in v)
        ),
        async (value) => {
          const text = JSON.stringify(value)
          count(expectClientError(await push(text), text))
        }
      ),
      { numRuns: 150 }
    )
  })

  it("valid batches with one thing made invalid: nothing of the batch is stored", { timeout: 90_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(corruption, fc.integer({ min: 1, max: 3 }), fc.nat(2), async (c, size, target) => {
        const body = corruptBatch(c, size, target)
        const status = expectClientError(await push(body), `${JSON.stringify(c).slice(0, 120)}: ${body}`)
        count(status)
        if (c.kind === "forbidden" && status !== 403) throw new Error(`a forbidden project got ${status}`)
        if (c.kind === "conflicting_duplicate" && status !== 409) throw new Error(`a conflict got ${status}`)
      }),
      { numRuns: 400 }
    )
  })

  it("a retried identity with different content is a 409 and changes nothing", async () => {
    // The three rows of beforeAll are (hostile-client, 1..3): send seq 1 again, changed.
    const body = JSON.stringify({
      client_id: "hostile-client",
      mutations: [{ client_seq: 1, project: "p", entity: "note", entity_key: "k1", op: "upsert", payload: "changed" }]
    })
    const reply = await push(body)
    count(expectClientError(reply, body))
    expect(reply.status).toBe(409)
    expect(JSON.parse(reply.text)).toMatchObject({ seq: 1 })
  })

  it("bodies over the limit with a Content-Length get 413", async () => {
    for (const size of [bodyLimit + 1, 100_000, 1_000_000]) {
      const body = JSON.stringify({ client_id: "hostile-client", mutations: [], pad: "x".repeat(size) })
      const reply = await push(body)
      count(expectClientError(reply, `${body.length} bytes`))
      expect(reply.status).toBe(413)
    }
  })

  // BUG (reported): a body over the limit sent without Content-Length (chunked) gets no answer:
  // @effect/platform-node's body reader destroys the request stream when maxBytes is exceeded,
  // which closes the socket before SyncServer's 413 can be written (the client sees ECONNRESET,
  // and the server logs nothing). Remove `.fails` once SyncServer answers 413 here.
  it.fails("bodies over the limit sent chunked get 413", async () => {
    const body = JSON.stringify({ client_id: "hostile-client", mutations: [], pad: "x".repeat(200_000) })
    const reply = await send(server.url, {
      method: "POST",
      path: "/v1/push",
      headers: { ...auth(), "content-type": "application/json" },
      body,
      chunked: true
    })
    count(expectClientError(reply, "a chunked body over the limit"))
    expect(reply.status).toBe(413)
  })

  it("missing and garbage tokens get 401, for push and pull", { timeout: 60_000 }, async () => {
    const garbage = fc.oneof(
      fc.constant(undefined),
      fc.constantFrom("", "Bearer", "Bearer ", "Bearer  ", "Basic dXNlcjpwYXNz", "Token abc", "bearer"),
      fc.string({ maxLength: 80 }).filter((s) => /^[\x20-\x7e]*$/.test(s)).map((s) => `Bearer ${s}`),
      fc.string({ maxLength: 80 }).filter((s) => /^[\x21-\x7e][\x20-\x7e]*$/.test(s)),
      fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) =>
        "Bearer " + Buffer.from(b.map((x) => x < 0x20 || x === 0x7f ? 0x41 : x)).toString("latin1")
      )
    ).filter((h) => h === undefined || !h.includes(token))
    await fc.assert(
      fc.asyncProperty(garbage, fc.boolean(), async (header, isPush) => {
        const headers: Record<string, string> = header === undefined ? {} : { authorization: header }
        const reply = isPush
          ? await send(server.url, {
            method: "POST",
            path: "/v1/push",
            headers: { ...headers, "content-type": "application/json" },
            body: validBatch()
          })
          : await send(server.url, { path: "/v1/pull?since_seq=0", headers })
        const status = expectClientError(reply, `authorization ${JSON.stringify(header)}`)
        count(status)
        if (status !== 401) throw new Error(`expected 401 for ${JSON.stringify(header)}, got ${status}`)
      }),
      { numRuns: 150 }
    )
    // The same token with a wrong scheme or a suffix is refused too.
    for (const header of [`Basic ${token}`, `Bearer ${token}x`, `Bearer x${token}`, token]) {
      const reply = await push(validBatch(), { "content-type": "application/json", authorization: header })
      count(expectClientError(reply, header))
      expect(reply.status).toBe(401)
    }
  })

  it("random query strings for pull: a page or a 4xx, never a 5xx", { timeout: 60_000 }, async () => {
    const value = fc.oneof(
      fc.constantFrom(
        "",
        "0",
        "1",
        "-1",
        "1.5",
        "abc",
        "1e3",
        "0x10",
        "%201",
        "1%20",
        "%ZZ",
        "%00",
        "%F0%9F%92%A9",
        "NaN"
      ),
      fc.constantFrom("99999999999999999999", "9007199254740993", "1e400", "-0", "+1", "00001"),
      fc.integer().map(String),
      fc.string({ maxLength: 12 }).map(encodeURIComponent)
    )
    const key = fc.oneof(
      fc.constantFrom("since_seq", "limit", "wait_ms", "since_seq", "limit"),
      fc.string({ maxLength: 8 }).map(encodeURIComponent)
    )
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(key, value), { maxLength: 5 }), async (pairs) => {
        // A valid positive wait_ms would hold the pull (legitimately): keep waits at 0 or invalid.
        const safe = pairs.map(([k, v]): [string, string] =>
          k === "wait_ms" && /^\+?0*[1-9]\d{0,15}$/.test(safeDecode(v).trim()) ? [k, "0"] : [k, v]
        )
        const path = `/v1/pull?${safe.map(([k, v]) => `${k}=${v}`).join("&")}`
        const reply = await send(server.url, { path, headers: auth() })
        count(reply.status)
        if (reply.status === 200) {
          const page = JSON.parse(reply.text) as { mutations: Array<unknown>; latest_seq: number; has_more: boolean }
          if (!Array.isArray(page.mutations) || page.latest_seq !== latestBefore) {
            throw new Error(`bad page for ${path}: ${reply.text.slice(0, 200)}`)
          }
        } else expectClientError(reply, path)
      }),
      { numRuns: 200 }
    )
  })

  it("unknown routes and methods get a JSON 404/405", { timeout: 60_000 }, async () => {
    const known = new Set(["POST /v1/push", "GET /v1/pull", "GET /v1/health"])
    const path = fc.oneof(
      fc.constantFrom("/", "/v1", "/v1/", "/v1/push/", "/v1/pull/x", "/v2/push", "/v1/health/..", "/%2e%2e/v1/push"),
      fc.webPath().map((p) => p.length === 0 ? "/x" : p)
    )
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH"), path, async (method, p) => {
        const route = `${method} ${p.split("?")[0]}`
        fc.pre(!known.has(route))
        const reply = await send(server.url, {
          method,
          path: p,
          headers: { ...auth(), "content-type": "application/json" },
          ...(method === "GET" ? {} : { body: "{}" })
        })
        count(expectClientError(reply, route))
      }),
      { numRuns: 150 }
    )
  })

  it("raw bytes on a TCP socket do not hurt the server", { timeout: 60_000 }, async () => {
    const url = new URL(server.url)
    const garbage = [
      Buffer.from("\x00\x01\x02\xff\xfe garbage\r\n\r\n", "latin1"),
      Buffer.from("GET /v1/health HTTP/9.9\r\n\r\n"),
      Buffer.from("POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}"),
      Buffer.from("POST /v1/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
      Buffer.from("POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"client_id\""),
      Buffer.alloc(70_000, 0x41)
    ]
    for (const bytes of garbage) {
      const answer = await new Promise<string>((resolve) => {
        const socket = connect(Number(url.port), url.hostname)
        let received = ""
        socket.on("data", (d) => (received += d.toString("latin1")))
        socket.on("error", () => resolve(received))
        socket.on("close", () => resolve(received))
        socket.write(bytes)
        // A request that never completes: give up after a moment, as a client would.
        setTimeout(() => socket.destroy(), 500)
      })
      requests++
      const status = /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]
      if (status !== undefined) expect(Number(status), answer.slice(0, 200)).toBeLessThan(500)
    }
  })
})
