/**
 * Two replicas on two SQLite files sync through one in-memory server (same rules as the real
 * one) with a small push/pull loop over the LocalStore and CloudTransport APIs; whatever the
 * interleaving of writes, pushes (some of whose responses are lost) and pulls, both end with
 * the same documents: the server's log replayed in seq order.
 */
import { CloudTransport, LocalStore, Mutation } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, FastCheck as fc, Layer } from "effect"
import { join } from "node:path"
import { SqliteLocalStore } from "../src/index.js"
import { tempDir } from "./utils.js"

interface Replica {
  readonly store: LocalStore.LocalStore["Type"]
  readonly transport: CloudTransport.CloudTransport["Type"]
}

const toEntry = (row: Mutation.SyncMutation): Mutation.MutationEntry => ({
  clientSeq: row.seq,
  project: row.project,
  entity: row.entity,
  entityKey: row.entityKey,
  op: row.op,
  payload: row.payload
})

/** Pushes every pending row in small batches; acks exactly the accepted seqs, unless the response is lost. */
const push = (r: Replica, target: string, options: { readonly loseResponse?: boolean } = {}) =>
  Effect.gen(function*() {
    while (true) {
      const rows = yield* r.store.listPendingMutations(target, 3)
      if (rows.length === 0) return
      const result = yield* r.transport.push({ clientId: r.store.clientId, mutations: rows.map(toEntry) })
      if (options.loseResponse) return // the server stored the batch; we never hear back
      assert.strictEqual(result.acceptedSeqs.length, rows.length)
      yield* r.store.ackMutationSeqs(
        target,
        rows.map((row, i) => ({ seq: row.seq, serverSeq: result.acceptedSeqs[i] }))
      )
    }
  })

/** Pulls pages until the server has nothing more, applying each mutation in seq order. */
const pull = (r: Replica, target: string, results: Array<Mutation.ApplyResult> = []) =>
  Effect.gen(function*() {
    while (true) {
      const cursor = (yield* r.store.getSyncState(target)).lastPulledSeq
      const page = yield* r.transport.pull(cursor, 4)
      for (const m of page.mutations) results.push(yield* r.store.applyPulledMutation(target, m))
      if (!page.hasMore) return
    }
  })

const documents = (r: Replica, project: string) =>
  Effect.map(r.store.listDocuments(project), (docs) => docs.map((d) => [d.entity, d.entityKey, d.value]))

/** The server's log replayed in seq order, as the document table would hold it. */
const replay = (log: ReadonlyArray<Mutation.PulledMutation>, project: string) => {
  const docs = new Map<string, [string, string, unknown]>()
  for (const m of log) {
    if (m.project !== project) continue
    const key = `${m.entity}\u0000${m.entityKey}`
    if (m.op === "delete") docs.delete(key)
    else docs.set(key, [m.entity, m.entityKey, m.payload])
  }
  return [...docs.entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([, d]) => d)
}

const twoReplicas = Effect.gen(function*() {
  const dir = yield* tempDir
  const open = (name: string) =>
    Effect.map(
      Layer.build(SqliteLocalStore.layerFile(join(dir, name))),
      (ctx) => Context.get(ctx, LocalStore.LocalStore)
    )
  return [yield* open("a.db"), yield* open("b.db")] as const
})

const settleAll = (replicas: ReadonlyArray<Replica>, target: string) =>
  Effect.gen(function*() {
    for (let round = 0; round < 2; round++) {
      for (const r of replicas) yield* push(r, target)
      for (const r of replicas) yield* pull(r, target)
    }
  })

const write = (r: Replica, target: string, project: string, key: string, value: number | null) =>
  r.store.appendLocal(target, [{
    project,
    entity: "doc",
    entityKey: key,
    op: value === null ? "delete" : "upsert",
    payload: value === null ? null : { value }
  }])

describe("Convergence of two SQLite replicas through one server", () => {
  it.scoped("concurrent writes to the same keys, one push response lost: both end on the server's log", () =>
    Effect.gen(function*() {
      const [storeA, storeB] = yield* twoReplicas
      const server = yield* CloudTransport.makeMemoryServer
      const a: Replica = { store: storeA, transport: CloudTransport.fromMemoryServer(server) }
      const b: Replica = { store: storeB, transport: CloudTransport.fromMemoryServer(server) }
      assert.notStrictEqual(storeA.clientId, storeB.clientId)
      yield* storeA.enroll("p")
      yield* storeB.enroll("p")
      yield* write(a, "cloud", "p", "k", 1)
      yield* write(b, "cloud", "p", "k", 2)
      yield* write(b, "cloud", "p", "j", 3)
      yield* push(a, "cloud", { loseResponse: true }) // server: 1 = A's k; A does not know
      yield* push(b, "cloud") // server: 2 = B's k, 3 = B's j
      yield* pull(a, "cloud") // A keeps 1 (its own echo) and 2 aside for k; applies 3
      assert.deepStrictEqual(yield* documents(a, "p"), [["doc", "j", { value: 3 }], ["doc", "k", { value: 1 }]])
      yield* push(a, "cloud") // the retry gets seq 1 back: 2 > 1, so B's value wins on A too
      yield* settleAll([a, b], "cloud")
      const expected = replay(server.log(), "p")
      assert.deepStrictEqual(expected, [["doc", "j", { value: 3 }], ["doc", "k", { value: 2 }]])
      assert.deepStrictEqual(yield* documents(a, "p"), expected)
      assert.deepStrictEqual(yield* documents(b, "p"), expected)
      assert.strictEqual(server.latestSeq(), 3)
    }))

  it.scoped("random interleavings of writes, pushes, lost responses and pulls converge", () =>
    Effect.gen(function*() {
      const [storeA, storeB] = yield* twoReplicas
      const action = fc.oneof(
        fc.record({
          kind: fc.constant("write" as const),
          replica: fc.integer({ min: 0, max: 1 }),
          key: fc.constantFrom("k0", "k1"),
          value: fc.option(fc.integer({ min: 0, max: 99 }), { freq: 5 })
        }),
        fc.record({
          kind: fc.constantFrom("push" as const, "pushLost" as const, "pull" as const),
          replica: fc.integer({ min: 0, max: 1 })
        })
      )
      const results: Array<Mutation.ApplyResult> = []
      const schedules = fc.sample(fc.array(action, { minLength: 20, maxLength: 40 }), { numRuns: 40, seed: 7 })
      for (const [run, schedule] of schedules.entries()) {
        // Each run has a server, a target and a project of its own, on the same two files.
        const target = `run-${run}`
        const project = `p${run}`
        const server = yield* CloudTransport.makeMemoryServer
        const replicas: ReadonlyArray<Replica> = [storeA, storeB].map((store) => ({
          store,
          transport: CloudTransport.fromMemoryServer(server)
        }))
        for (const r of replicas) yield* r.store.enroll(project)
        for (const step of schedule) {
          const r = replicas[step.replica]
          switch (step.kind) {
            case "write":
              yield* write(r, target, project, step.key, step.value)
              break
            case "push":
              yield* push(r, target)
              break
            case "pushLost":
              yield* push(r, target, { loseResponse: true })
              break
            case "pull":
              yield* pull(r, target, results)
              break
          }
        }
        yield* settleAll(replicas, target)
        const expected = replay(server.log(), project)
        const message = `run ${run}: ${JSON.stringify(schedule)}`
        assert.deepStrictEqual(yield* documents(replicas[0], project), expected, message)
        assert.deepStrictEqual(yield* documents(replicas[1], project), expected, message)
        for (const r of replicas) {
          assert.strictEqual(yield* r.store.countPending(target), 0, message)
          assert.strictEqual((yield* r.store.getSyncState(target)).lastPulledSeq, server.latestSeq(), message)
        }
      }
      // The schedules did exercise the convergence rule.
      assert.isAbove(results.filter((r) => r === "kept_aside").length, 50)
    }))
})
