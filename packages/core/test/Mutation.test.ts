import { Mutation } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"

const nested = (depth: number): unknown => {
  let v: unknown = 1
  for (let i = 1; i < depth; i++) v = [v]
  return v
}

describe("Mutation", () => {
  it("payloadProblem accepts portable JSON and names what is wrong, with its path", () => {
    for (
      const ok of [null, true, 0, -1.5, "text", [], {}, { a: [1, { b: "c" }] }, nested(64), Number.MAX_SAFE_INTEGER]
    ) {
      assert.isUndefined(Mutation.payloadProblem(ok), JSON.stringify(ok))
    }
    const table: Array<[unknown, string]> = [
      [nested(65), "payload nests deeper than 64 levels"],
      [{ a: [0, "x\u0000y"] }, "payload.a[1] contains a NUL character"],
      [{ a: { b: "\uD800" } }, "payload.a.b contains a lone UTF-16 surrogate"],
      [{ ["k\u0000"]: 1 }, "payload key \"k\\u0000\" contains a NUL character"],
      [{ n: 2 ** 60 }, "payload.n is beyond the safe-integer range"],
      [[Number.NaN], "payload[0] is not a finite number"],
      [{ d: new Date(0) }, "payload.d is not JSON (object)"],
      [{ f: () => 1 }, "payload.f is not JSON (function)"]
    ]
    for (const [value, problem] of table) assert.strictEqual(Mutation.payloadProblem(value), problem)
  })

  it.effect("entries encode to the wire's snake_case and decode back", () =>
    Effect.gen(function*() {
      const entry: Mutation.MutationEntry = {
        clientSeq: 3,
        project: "p",
        entity: "note",
        entityKey: "k",
        op: "upsert",
        payload: { x: 1 }
      }
      const wire = yield* Schema.encode(Mutation.MutationEntry)(entry)
      assert.deepStrictEqual(wire, {
        client_seq: 3,
        project: "p",
        entity: "note",
        entity_key: "k",
        op: "upsert",
        payload: { x: 1 }
      })
      assert.deepStrictEqual(yield* Schema.decodeUnknown(Mutation.MutationEntry)(wire), entry)
      const bad = yield* Effect.flip(
        Schema.decodeUnknown(Mutation.MutationEntry)({ ...wire, client_seq: 0, project: "" })
      )
      assert.match(String(bad), /client_seq|project/)
    }))
})
