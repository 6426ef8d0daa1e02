/**
 * Several server processes on one PostgreSQL database, played by two in-process `SyncServer`s,
 * each with its own connection pool, on one fresh schema.
 */
import type { CloudTransport, Mutation } from "@autosync/core"
import { PgMutationLog, Tokens } from "@autosync/server"
import { assert, it } from "@effect/vitest"
import { Context, Duration, Effect, Fiber, Layer, Option } from "effect"
import type { Scope } from "effect"
import { entry, layerServer, TestServer } from "./helpers.js"
import { describePg, freshSchema, layerClient } from "./pg.js"

/** One server instance on `schema`, built on its own (its own pool, its own listener). */
const instance = (schema: string, pollInterval: Duration.DurationInput): Effect.Effect<
  TestServer["Type"],
  never,
  Scope.Scope
> =>
  Layer.build(
    layerServer().pipe(
      Layer.provide(Layer.merge(PgMutationLog.layer({ pollInterval }), Tokens.layer)),
      Layer.provide(layerClient(schema, 5)),
      Layer.orDie
    )
  ).pipe(Effect.map(Context.get(TestServer)))

const seqs = (page: Mutation.PullResponse) => page.mutations.map((m) => m.seq)

describePg("SyncServer on PostgreSQL", () => {
  it.live("two instances, 20 clients pushing while 5 pull: every puller sees every seq once, in order, no gaps", () =>
    Effect.gen(function*() {
      const schema = yield* freshSchema
      const servers = [yield* instance(schema, "1 second"), yield* instance(schema, "1 second")]
      const clients = 20
      const batches = 5
      const perBatch = 5
      const total = clients * batches * perBatch

      const pushers = Effect.forEach(
        Array.from({ length: clients }, (_, i) => i),
        (i) =>
          Effect.gen(function*() {
            const t = yield* servers[i % 2].transport(["p1"])
            const accepted: Array<number> = []
            for (let b = 0; b < batches; b++) {
              const mutations = Array.from(
                { length: perBatch },
                (_, k) => entry(b * perBatch + k + 1, { entityKey: `c${i}-${b}-${k}` })
              )
              const result = yield* t.push({ clientId: `client-${i}`, mutations })
              accepted.push(...result.acceptedSeqs)
            }
            return accepted
          }),
        { concurrency: "unbounded" }
      )

      const puller = (t: CloudTransport.CloudTransport["Type"], waitMs: number) =>
        Effect.gen(function*() {
          const seen: Array<number> = []
          let cursor = 0
          while (seen.length < total) {
            const page = yield* t.pull(cursor, 37, { wait: Duration.millis(waitMs) })
            for (const m of page.mutations) {
              seen.push(m.seq)
              cursor = m.seq
            }
          }
          return seen
        })

      const pullerTransports = yield* Effect.forEach([0, 1, 2, 3, 4], (j) => servers[j % 2].transport(["p1"]))
      const [accepted, seen] = yield* Effect.all([
        pushers,
        Effect.forEach(
          pullerTransports,
          (t, j) => puller(t, j === 4 ? 0 : 300), // four long-poll, one polls as fast as it can
          { concurrency: "unbounded" }
        )
      ], { concurrency: "unbounded" }).pipe(
        Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("pullers did not see every seq") })
      )

      const all = Array.from({ length: total }, (_, i) => i + 1)
      assert.deepStrictEqual(accepted.flat().sort((a, b) => a - b), all)
      for (const s of seen) assert.deepStrictEqual(s, all)
      // Each seq holds what its client pushed, whichever instance took it.
      const page = yield* (yield* servers[1].transport(["p1"])).pull(0, 1000)
      for (const [i, clientSeqs] of accepted.entries()) {
        for (const [n, seq] of clientSeqs.entries()) {
          const b = Math.floor(n / perBatch)
          assert.strictEqual(page.mutations[seq - 1].entityKey, `c${i}-${b}-${n % perBatch}`)
        }
      }
    }).pipe(Effect.scoped))

  it.live("a pull held on instance A answers when a push lands on instance B (LISTEN/NOTIFY)", () =>
    Effect.gen(function*() {
      const schema = yield* freshSchema
      // Polling is slowed down to a minute: only a notification can wake the pull in time.
      const a = yield* instance(schema, "60 seconds")
      const b = yield* instance(schema, "60 seconds")
      const onA = yield* a.transport(["p1"])
      const onB = yield* b.transport(["p1"])
      const held = yield* Effect.fork(Effect.timed(onA.pull(0, 10, { wait: "30 seconds" })))
      yield* Effect.sleep("300 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(held)))
      yield* onB.push({ clientId: "c1", mutations: [entry(1)] })
      const [elapsed, page] = yield* Fiber.join(held)
      assert.deepStrictEqual(seqs(page), [1])
      assert.isBelow(Duration.toMillis(elapsed), 15_000) // woken by the notification, not the 30 s wait
    }).pipe(Effect.scoped))

  it.live("tokens created through one instance work on the other; the plaintext is not stored", () =>
    Effect.gen(function*() {
      const schema = yield* freshSchema
      const a = yield* instance(schema, "1 second")
      const b = yield* instance(schema, "1 second")
      const token = yield* a.token(["p1"])
      const tokens = yield* Layer.build(Tokens.layer.pipe(Layer.provide(layerClient(schema, 1)), Layer.orDie)).pipe(
        Effect.map(Context.get(Tokens.Tokens))
      )
      assert.deepStrictEqual(yield* tokens.verify(token), ["p1"])
      const viaB = yield* b.transport(["p1"])
      yield* viaB.push({ clientId: "c1", mutations: [entry(1)] })
    }).pipe(Effect.scoped))
})
