/**
 * Who is connected and what the server did lately: `Activity` (the throughput ring) under
 * TestClock, `Clients` in memory, SQLite and PostgreSQL, and the admin endpoints of a real server
 * (`/v1/admin/clients`, `/v1/admin/activity`, `/dashboard`) over raw HTTP.
 */
import { Activity, Clients, SqliteMutationLog, Tokens } from "@autosync/server"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted, Scope, TestClock } from "effect"
import { layerMemoryServer, layerSqliteServer, request, tempDbFile, TestServer } from "./helpers.js"
import { describePg, freshSchema, schemaUrl } from "./pg.js"

describe("Activity", () => {
  it.effect("counts requests and mutations per interval; old intervals fall out of the ring", () =>
    Effect.gen(function*() {
      const activity = yield* Activity.make({ interval: "10 seconds", buckets: 3 })
      yield* activity.record("push", 5)
      yield* activity.record("pull", 2)
      yield* TestClock.adjust("10 seconds")
      yield* activity.record("pull", 7)
      yield* activity.reject(403)
      yield* activity.reject(403)
      let snapshot = yield* activity.snapshot
      assert.strictEqual(snapshot.intervalMs, 10_000)
      assert.deepStrictEqual(snapshot.buckets, [
        { start: -10_000, pushRequests: 0, pullRequests: 0, pushed: 0, pulled: 0, rejected: 0 },
        { start: 0, pushRequests: 1, pullRequests: 1, pushed: 5, pulled: 2, rejected: 0 },
        { start: 10_000, pushRequests: 0, pullRequests: 1, pushed: 0, pulled: 7, rejected: 2 }
      ])
      assert.deepStrictEqual(snapshot.rejections, { "403": 2 })
      // Two quiet intervals later, only the second one's counts are left, at the oldest place.
      yield* TestClock.adjust("20 seconds")
      snapshot = yield* activity.snapshot
      assert.deepStrictEqual(snapshot.buckets.map((b) => [b.start, b.pulled]), [[10_000, 7], [20_000, 0], [30_000, 0]])
      yield* activity.record("push", 1)
      assert.deepStrictEqual(Activity.add(Activity.empty, 5, { pushed: 1 }, { intervalMs: 10, buckets: 2 }).buckets, [
        { index: 5, start: 50, pushRequests: 0, pullRequests: 0, pushed: 1, pulled: 0, rejected: 0 }
      ])
      assert.deepStrictEqual(snapshot.rejections, { "403": 2 }, "refusals by status are kept since the start")
    }))
})

const ClientsSuite = (name: string, layer: Layer.Layer<Clients.Clients, unknown, Scope.Scope>) =>
  describe(`Clients: ${name}`, () => {
    it.scoped("records pushes and pulls per client id; most recently seen first", () =>
      Effect.gen(function*() {
        const clients = yield* Clients.Clients
        yield* TestClock.setTime(1_000)
        yield* clients.recordPush("a", "tok_a", 3)
        yield* TestClock.setTime(2_000)
        yield* clients.recordPull("b", "tok_b", 0)
        yield* clients.recordSent("b", 3, 3)
        yield* TestClock.setTime(3_000)
        yield* clients.recordPull("a", "tok_a", 3)
        yield* clients.recordPush("a", "tok_a", 2)
        assert.deepStrictEqual(yield* clients.list, [
          { clientId: "a", tokenId: "tok_a", lastPushAt: 3_000, lastPullAt: 3_000, cursor: 3, pushed: 5, pulled: 0 },
          {
            clientId: "b",
            tokenId: "tok_b",
            lastPushAt: undefined,
            lastPullAt: 2_000,
            cursor: 3,
            pushed: 0,
            pulled: 3
          }
        ])
        // What was written already is merged with what comes after.
        yield* TestClock.setTime(4_000)
        yield* clients.recordPull("b", "tok_c", 5)
        yield* clients.recordSent("b", 2, 7)
        const [first] = yield* clients.list
        assert.deepStrictEqual(first, {
          clientId: "b",
          tokenId: "tok_c",
          lastPushAt: undefined,
          lastPullAt: 4_000,
          cursor: 7,
          pushed: 0,
          pulled: 5
        })
        // The cursor never goes back (a pull from an older seq does not lower it).
        yield* clients.recordPull("b", "tok_c", 1)
        assert.strictEqual((yield* clients.list)[0].cursor, 7)
      }).pipe(Effect.provide(Layer.orDie(layer))))
  })

ClientsSuite("memory", Clients.layerMemory)

const sqliteClients = Layer.unwrapScoped(
  Effect.map(tempDbFile, (file) => Clients.layer().pipe(Layer.provide(SqliteMutationLog.layerClient({ file }))))
)
ClientsSuite("SQLite", sqliteClients)

describe("Clients: SQLite", () => {
  it.scoped("written in batches: what a closed server recorded is read back by the next one", () =>
    Effect.gen(function*() {
      const file = yield* tempDbFile
      const layer = Clients.layer({ flushInterval: "1 hour" }).pipe(
        Layer.provide(SqliteMutationLog.layerClient({ file })),
        Layer.orDie
      )
      yield* Effect.scoped(
        Effect.gen(function*() {
          const clients = yield* Clients.Clients
          yield* TestClock.setTime(7_000)
          yield* clients.recordPull("a", "tok_a", 4)
          yield* clients.recordSent("a", 1, 4)
        }).pipe(Effect.provide(layer))
      )
      // The first scope's finalizer wrote it; nothing was written per request.
      const listed = yield* Effect.provide(Effect.flatMap(Clients.Clients, (c) => c.list), layer)
      assert.deepStrictEqual(listed, [
        { clientId: "a", tokenId: "tok_a", lastPushAt: undefined, lastPullAt: 7_000, cursor: 4, pushed: 0, pulled: 1 }
      ])
    }))
})

describe("Clients: SQLite flush", () => {
  it.scoped("the first change since the last write is written one flushInterval later, with the changes after it", () =>
    Effect.gen(function*() {
      const file = yield* tempDbFile
      const context = yield* Layer.build(
        Clients.layer({ flushInterval: "5 seconds" }).pipe(
          Layer.provideMerge(SqliteMutationLog.layerClient({ file })),
          Layer.orDie
        )
      )
      const clients = Context.get(context, Clients.Clients)
      const sql = Context.get(context, SqlClient.SqlClient)
      const written = sql<{ readonly client_id: string }>`SELECT client_id FROM autosync_clients`.pipe(
        Effect.map((rows) => rows.map((row) => row.client_id))
      )
      yield* TestClock.adjust("62 seconds") // off any 5 s boundary: a fixed schedule would show
      yield* clients.recordPull("a", "tok_a", 1)
      yield* TestClock.adjust("4 seconds")
      assert.deepStrictEqual(yield* written, [])
      yield* clients.recordPull("b", "tok_b", 1) // during the wait: written with a's change
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual((yield* written).sort(), ["a", "b"])
      yield* clients.recordPull("c", "tok_c", 1) // the first change since that write: 5 s from now
      yield* TestClock.adjust("4 seconds")
      assert.deepStrictEqual((yield* written).sort(), ["a", "b"])
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual((yield* written).sort(), ["a", "b", "c"])
    }))
})

describePg("Clients in PostgreSQL", () => {
  ClientsSuite(
    "PostgreSQL",
    Layer.unwrapScoped(
      Effect.map(freshSchema, (schema) =>
        Clients.layer().pipe(
          Layer.provide(PgClient.layer({ url: Redacted.make(schemaUrl(schema)), maxConnections: 2 }))
        ))
    )
  )
})

const wire = (clientSeq: number) => ({
  client_seq: clientSeq,
  project: "p1",
  entity: "document",
  entity_key: `k${clientSeq}`,
  op: "upsert",
  payload: { n: clientSeq }
})

const push = (url: string, token: string, clientId: string, seqs: ReadonlyArray<number>) =>
  request(`${url}/v1/push`, { token, body: JSON.stringify({ client_id: clientId, mutations: seqs.map(wire) }) })

const adminEndpoints = (name: string, layer: Layer.Layer<TestServer>) =>
  describe(`admin endpoints: ${name}`, () => {
    it.live("clients with their cursor, lag and token id; activity; admin tokens only", () =>
      Effect.gen(function*() {
        const { adminToken, token, url } = yield* TestServer
        const writer = yield* token(["p1"])
        const admin = yield* adminToken([])
        assert.strictEqual((yield* push(url, writer, "alice", [1, 2, 3])).status, 200)
        // bob was sent one page of one (has_more): his cursor is 1; alice pulls from 3, where she is.
        assert.strictEqual(
          (yield* request(`${url}/v1/pull?since_seq=0&limit=1&exclude_client_id=bob`, { token: writer })).status,
          200
        )
        yield* request(`${url}/v1/pull?since_seq=3&exclude_client_id=alice`, { token: writer })
        // A pull that does not name its client is counted, not recorded.
        yield* request(`${url}/v1/pull?since_seq=0`, { token: writer })

        const clients = yield* request(`${url}/v1/admin/clients`, { token: admin })
        assert.strictEqual(clients.status, 200)
        assert.strictEqual(clients.json.latest_seq, 3)
        const byId = new Map<string, any>(clients.json.clients.map((c: any) => [c.client_id, c]))
        assert.deepStrictEqual([...byId.keys()].sort(), ["alice", "bob"])
        const alice = byId.get("alice")
        assert.deepInclude(alice, { token_id: Tokens.idOf(writer), cursor: 3, lag: 0, pushed: 3, pulled: 0 })
        assert.isString(alice.last_push_at)
        assert.deepInclude(byId.get("bob"), { cursor: 1, lag: 2, pulled: 1, last_push_at: null })

        const activity = yield* request(`${url}/v1/admin/activity`, { token: admin })
        assert.strictEqual(activity.status, 200)
        const sum = (key: string) => activity.json.buckets.reduce((n: number, b: any) => n + b[key], 0)
        assert.deepStrictEqual([sum("push_requests"), sum("pushed"), sum("pull_requests"), sum("pulled")], [1, 3, 3, 4])

        // Not an admin token: 403; no token or an unknown one: 401; each answer is counted as refused.
        const refused = yield* request(`${url}/v1/admin/clients`, { token: writer })
        assert.strictEqual(refused.status, 403)
        assert.match(refused.json.message, /is not an admin token/)
        assert.strictEqual((yield* request(`${url}/v1/admin/activity`)).status, 401)
        assert.strictEqual((yield* request(`${url}/v1/admin/clients`, { token: "as_nope" })).status, 401)
        // The sync routes' refusals too (they are served in front of the API, with the same hooks).
        assert.strictEqual((yield* request(`${url}/v1/pull?since_seq=0`, { token: "as_nope" })).status, 401)
        assert.strictEqual((yield* request(`${url}/v1/push`, { token: writer, body: "{" })).status, 400)
        const after = yield* request(`${url}/v1/admin/activity`, { token: admin })
        assert.deepStrictEqual(after.json.rejections, { "400": 1, "401": 3, "403": 1 })

        // An admin token with a project may push and pull it, like any token.
        const adminWithProject = yield* adminToken(["p1"])
        assert.strictEqual((yield* push(url, adminWithProject, "carol", [1])).status, 200)
      }).pipe(Effect.provide(layer)))

    it.live("/dashboard is a page without data, served without credentials", () =>
      Effect.gen(function*() {
        const { url } = yield* TestServer
        const page = yield* request(`${url}/dashboard`)
        assert.strictEqual(page.status, 200)
        assert.match(page.contentType ?? "", /^text\/html/)
        assert.include(page.text, "/v1/admin/clients")
        assert.include(page.text, "sessionStorage")
      }).pipe(Effect.provide(layer)))
  })

adminEndpoints("memory log", layerMemoryServer())
adminEndpoints("SQLite", layerSqliteServer())
