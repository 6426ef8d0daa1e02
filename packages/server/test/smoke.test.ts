import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { entry, layerSqliteServer, request, TestServer } from "./helpers.js"

describe("smoke", () => {
  it.live("round trip", () =>
    Effect.gen(function*() {
      const server = yield* TestServer
      const t = yield* server.transport(["p1"])
      const r = yield* t.push({ clientId: "c1", mutations: [entry(1), entry(2)] })
      assert.deepStrictEqual(r.acceptedSeqs, [1, 2])
      const page = yield* t.pull(0, 10)
      console.log(page)
      const token = yield* server.token(["p1"])
      for (
        const [path, init] of [
          ["/v1/pull?since_seq=0", { token }],
          ["/v1/pull?since_seq=-1", { token }],
          ["/v1/pull?since_seq=abc&limit=0", { token }],
          ["/v1/pull?since_seq=0", {}],
          ["/v1/nope", {}],
          ["/v1/push", { token, body: "not json" }],
          ["/v1/push", { token, body: "{}" }],
          ["/v1/push", { token, body: "[".repeat(100000) + "]".repeat(100000) }],
          ["/v1/push", {
            token,
            body: JSON.stringify({
              client_id: "c",
              mutations: [{
                client_seq: 1,
                project: "p1",
                entity: "e",
                entity_key: "k",
                op: "upsert",
                payload: JSON.parse("[".repeat(100) + "]".repeat(100))
              }]
            })
          }],
          ["/v1/health", {}]
        ] as const
      ) {
        const res = yield* request(server.url + path, init as any)
        console.log(path, res.status, res.text.slice(0, 300))
      }
    }).pipe(Effect.provide(layerSqliteServer())))
})
