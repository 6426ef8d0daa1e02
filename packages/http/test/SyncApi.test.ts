import { SyncApi } from "@autosync/http"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, ParseResult, Schema } from "effect"

const decodeParams = (params: Record<string, string>) =>
  Schema.decodeUnknownEither(SyncApi.PullParams)(params).pipe(
    Either.mapLeft((e) => ParseResult.ArrayFormatter.formatErrorSync(e).map((i) => `${i.path.join(".")}: ${i.message}`))
  )

describe("SyncApi", () => {
  it("every error answers with its status and a message", () => {
    const statuses = [
      [SyncApi.BadRequest, 400],
      [SyncApi.Unauthorized, 401],
      [SyncApi.Forbidden, 403],
      [SyncApi.NotFound, 404],
      [SyncApi.Conflict, 409],
      [SyncApi.PayloadTooLarge, 413],
      [SyncApi.ServerError, 500]
    ] as const
    for (const [error, status] of statuses) {
      assert.strictEqual(HttpApiSchema.getStatusError(error), status, error.name)
      const encoded = Schema.encodeSync(error as any)(new (error as any)({ message: "why" }))
      assert.strictEqual((encoded as any).message, "why")
    }
  })

  it("pull params: snake_case keys, defaults, and a message naming the bad field", () => {
    assert.deepStrictEqual(decodeParams({ since_seq: "3" }), Either.right({ sinceSeq: 3, limit: 100, waitMs: 0 }))
    assert.deepStrictEqual(
      decodeParams({ since_seq: "0", limit: "5000", wait_ms: "999999" }),
      Either.right({ sinceSeq: 0, limit: 5000, waitMs: 999999 }) // clamped by the server, not refused
    )
    assert.deepStrictEqual(decodeParams({}), Either.left(["since_seq: is missing"]))
    assert.deepStrictEqual(decodeParams({ since_seq: "-1" }), Either.left(["since_seq: since_seq must be >= 0"]))
    assert.deepStrictEqual(decodeParams({ since_seq: "0.5" }), Either.left(["since_seq: since_seq must be an integer"]))
    assert.deepStrictEqual(decodeParams({ since_seq: "0", limit: "0" }), Either.left(["limit: limit must be >= 1"]))
    assert.deepStrictEqual(
      decodeParams({ since_seq: "0", wait_ms: "-5" }),
      Either.left(["wait_ms: wait_ms must be >= 0"])
    )
    assert.isTrue(Either.isLeft(decodeParams({ since_seq: "x" })))
  })

  it("the push body: a batch in snake_case, checked for shape and nesting before anything else", () => {
    const batch = {
      clientId: "c1",
      mutations: [{ clientSeq: 1, project: "p", entity: "e", entityKey: "k", op: "upsert", payload: { x: [1] } }]
    }
    const wire = Schema.encodeSync(SyncApi.PushBody)(batch)
    assert.deepStrictEqual(wire, {
      client_id: "c1",
      mutations: [{ client_seq: 1, project: "p", entity: "e", entity_key: "k", op: "upsert", payload: { x: [1] } }]
    })
    assert.deepStrictEqual(Schema.decodeUnknownSync(SyncApi.PushBody)(wire), batch)
    const refused = (u: unknown) =>
      Either.getLeft(Schema.decodeUnknownEither(SyncApi.PushBody)(u)).pipe(
        (o) => o._tag === "Some" ? ParseResult.TreeFormatter.formatErrorSync(o.value) : "accepted"
      )
    assert.include(refused([]), "must be a JSON object")
    assert.include(refused(null), "must be a JSON object")
    assert.include(refused("text"), "must be a JSON object")
    let deep: unknown = 1
    for (let i = 0; i < 100_000; i++) deep = { a: deep }
    assert.include(refused(deep), "nests deeper than 200 levels")
  })

  it.effect("nestingProblem survives any depth", () =>
    Effect.sync(() => {
      let deep: unknown = []
      for (let i = 0; i < 1_000_000; i++) deep = [deep]
      assert.strictEqual(SyncApi.nestingProblem(deep), "the request body nests deeper than 200 levels")
      assert.isUndefined(SyncApi.nestingProblem({ a: [{ b: [[1]] }] }))
      assert.isUndefined(SyncApi.nestingProblem("scalar"))
      assert.strictEqual(SyncApi.nestingProblem([[[1]]], 2), "the request body nests deeper than 2 levels")
    }))
})
