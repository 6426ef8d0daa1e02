/**
 * Two SyncManagers on two SQLite files converge through the real HTTP server (SQLite log, a
 * free port on 127.0.0.1), after concurrent writes to the same keys: both document tables end
 * identical and equal to the server's log replayed in seq order.
 */
import { Replica } from "@autosync/cli"
import { SyncConfig } from "@autosync/core"
import { SqliteMutationLog, SyncServer, Tokens } from "@autosync/server"
import * as HttpServer from "@effect/platform/HttpServer"
import { assert, describe, it } from "@effect/vitest"
import { Context, type Duration, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const project = "shared"

const startServer = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "autosync-e2e-"))),
    (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true }))
  )
  const file = path.join(dir, "server.db")
  const token = yield* Effect.flatMap(Tokens.Tokens, (t) => t.create([project])).pipe(
    Effect.provide(Tokens.layer.pipe(Layer.provide(SqliteMutationLog.layerClient({ file }))))
  )
  const server = yield* Layer.build(SyncServer.layerSqlite({ file, port: 0, host: "127.0.0.1", logRequests: false }))
  const address = Context.get(server, HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") return yield* Effect.die("no TCP address")
  return { dir, token, url: `http://127.0.0.1:${address.port}` }
})

const tableOf = (replica: Replica.Running) =>
  Effect.map(
    replica.store.listDocuments(project),
    (docs) => docs.map((d) => [`${d.entity}/${d.entityKey}`, d.value] as const)
  )

describe("replicas through the real server", () => {
  it.live("two SQLite replicas converge after concurrent writes to the same keys", () =>
    Effect.gen(function*() {
      const { dir, token, url } = yield* startServer
      const open = (name: string, longPollWait: Duration.DurationInput) =>
        Effect.flatMap(
          SyncConfig.make({
            leaseOwner: name,
            debounce: "10 millis",
            pushBatchSize: 7,
            pullBatchSize: 5,
            longPollWait
          }),
          (config) => Replica.run({ file: path.join(dir, `${name}.db`), serverUrl: url, token, config })
        )
      const a = yield* open("a", "2 seconds")
      const b = yield* open("b", "0 millis")
      yield* a.store.enroll(project)
      yield* b.store.enroll(project)

      // Both replicas write the same 10 keys, interleaved with syncs, while their loops run too.
      for (let round = 0; round < 6; round++) {
        yield* Effect.all([
          Effect.forEach(
            Array.from({ length: 10 }, (_, k) => k),
            (k) => a.documents.put(project, "note", `k${k}`, { by: "a", round })
          ),
          Effect.forEach(Array.from({ length: 10 }, (_, k) => (k + round) % 10), (k) =>
            round % 3 === 2
              ? b.documents.remove(project, "note", `k${k}`)
              : b.documents.put(project, "note", `k${k}`, { by: "b", round }))
        ], { concurrency: 2 })
        yield* Effect.all([a.manager.syncNow, b.manager.syncNow], { concurrency: 2 })
      }
      // Settle: every replica syncs until a round changes nothing.
      for (let i = 0; i < 3; i++) {
        yield* a.manager.syncNow
        yield* b.manager.syncNow
      }
      assert.strictEqual(yield* a.store.countPending("cloud"), 0)
      assert.strictEqual(yield* b.store.countPending("cloud"), 0)

      // A fresh replica without local writes applies the whole log in seq order: its table is
      // the log replayed. Every write is in the log exactly once: 6 rounds × 10 × 2 replicas.
      const reader = yield* open("reader", "0 millis")
      yield* reader.manager.syncNow
      assert.strictEqual((yield* reader.store.getSyncState("cloud")).lastPulledSeq, 120)

      const tableA = yield* tableOf(a)
      const tableB = yield* tableOf(b)
      assert.deepStrictEqual(tableA, tableB)
      assert.deepStrictEqual(tableA, yield* tableOf(reader))
      assert.isAbove(tableA.length, 0)
    }).pipe(Effect.scoped), 60_000)
})
