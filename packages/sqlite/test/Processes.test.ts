/**
 * Real OS processes on one database file. The workers are plain `.mjs` scripts in `fixtures/`
 * that import the built packages (`pnpm test` builds them first). Waiting for a child is the
 * only place these tests use wall-clock time: they poll files with bounded retries.
 */
import { CloudTransport, LocalStore, Mutation } from "@autosync/core"
import { parsePushes, readLines } from "@autosync/test-support"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import type { Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { tempDir, withFile } from "./utils.js"

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
const built = fileURLToPath(new URL("../dist/index.js", import.meta.url))

interface Worker {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: () => boolean
}

/** A child node process, SIGKILLed with the scope if it is still running. */
const spawnWorker = (script: string, args: ReadonlyArray<string>): Effect.Effect<Worker, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, [fixture(script), ...args], { stdio: ["ignore", "pipe", "pipe"] })
      let output = ""
      let exited = false
      // Effect's logger writes to stdout: keep both streams for the diagnostics.
      child.stdout!.on("data", (chunk) => (output += String(chunk)))
      child.stderr!.on("data", (chunk) => (output += String(chunk)))
      child.on("exit", () => (exited = true))
      return { child, output: () => output, exited: () => exited }
    }),
    (w) => Effect.sync(() => w.exited() || w.child.kill("SIGKILL"))
  )

const kill = (w: Worker, signal: NodeJS.Signals) =>
  Effect.async<void>((resume) => {
    if (w.exited()) return resume(Effect.void)
    w.child.once("exit", () => resume(Effect.void))
    w.child.kill(signal)
  })

/** Polls `check` every 25 ms until it returns a value, for at most `within`. */
const waitFor = <A>(what: string, within: Duration.DurationInput, check: () => A | undefined, workers: Array<Worker>) =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(within)
    while (Date.now() < deadline) {
      const value = check()
      if (value !== undefined) return value
      yield* Effect.sleep("25 millis")
    }
    return yield* Effect.dieMessage(
      `timed out waiting for ${what}; worker output:\n${workers.map((w) => w.output()).join("\n---\n")}`
    )
  })

const pushesIn = (log: string) => parsePushes(readLines(log)).pushes

/** The documents the server's log gives when replayed in seq order. */
const replay = (writes: ReadonlyArray<Mutation.LocalWrite>) => {
  const docs = new Map<string, unknown>()
  for (const w of writes) {
    if (w.op === "delete") docs.delete(w.entityKey)
    else docs.set(w.entityKey, w.payload)
  }
  return [...docs.entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
}

const documents = Effect.map(
  Effect.flatMap(LocalStore.LocalStore, (s) => s.listDocuments("p")),
  (docs) => docs.map((d) => [d.entityKey, d.value] as const)
)

const remoteRows = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ n: number; distinct_seqs: number; max_seq: number | null }>`
      SELECT COUNT(*) AS n, COUNT(DISTINCT seq) AS distinct_seqs, MAX(seq) AS max_seq
      FROM sync_mutations WHERE source = 'remote'`,
    (rows) => rows[0]
  ))

describe.skipIf(!existsSync(built))("several OS processes on one file", () => {
  it.scopedLive(
    "processes opening a new file at the same time all initialise it, with one client id",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        for (const round of [0, 1, 2, 3]) {
          const db = join(dir, `race-${round}.db`)
          const workers = yield* Effect.all(
            Array.from({ length: 4 }, () => spawnWorker("open-store.mjs", [db])),
            { concurrency: "unbounded" }
          )
          const outcomes = yield* waitFor(
            "every process to open the file",
            "60 seconds",
            () =>
              workers.every((w) => w.exited())
                ? workers.map((w) => JSON.parse(w.output()) as { ok: boolean; clientId?: string })
                : undefined,
            workers
          )
          assert.deepStrictEqual(outcomes.map((o) => o.ok), [true, true, true, true], JSON.stringify(outcomes))
          assert.strictEqual(new Set(outcomes.map((o) => o.clientId)).size, 1)
        }
      }),
    180_000
  )

  it.scopedLive(
    "two SyncManager processes never push at the same time; a SIGKILLed holder is replaced",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const db = join(dir, "shared.db")
        const log = join(dir, "pushes.log")
        const a = yield* spawnWorker("lease-worker.mjs", [db, log, "A"])
        const b = yield* spawnWorker("lease-worker.mjs", [db, log, "B"])
        const workers = [a, b]
        const byOwner = { A: a, B: b } as Record<string, Worker>

        // Both opened (and initialised, concurrently) the same file: one client id.
        const ready = yield* waitFor("both workers", "60 seconds", () => {
          const lines = readLines(log).filter((l) => l.startsWith("ready:"))
          return lines.length === 2 ? lines.map((l) => l.split(" ")[0].slice("ready:".length)) : undefined
        }, workers)
        assert.strictEqual(ready[0], ready[1])

        // Let the holder push for a while, then kill it without warning.
        yield* waitFor("ten pushes", "60 seconds", () => {
          const done = pushesIn(log).filter((p) => p.end !== undefined)
          return done.length >= 10 ? true : undefined
        }, workers)
        const before = pushesIn(log)
        const holder = before[before.length - 1].owner
        const survivor = holder === "A" ? "B" : "A"
        const lastHolderStart = Math.max(...before.filter((p) => p.owner === holder).map((p) => p.start))
        const killedAt = Date.now()
        yield* kill(byOwner[holder], "SIGKILL")

        const takeover = yield* waitFor("the survivor to push", "60 seconds", () => {
          const first = pushesIn(log).find((p) => p.owner === survivor && p.start > lastHolderStart)
          return first?.end !== undefined ? first : undefined
        }, workers)
        // Not before the holder's lease expired. The holder renews its 1 s lease once less than half
        // of it is left, so its last push started with at least 500 ms of lease ahead. (How soon
        // after is a figure, not an assertion: the machine may be loaded.)
        assert.isAtLeast(takeover.start, lastHolderStart + 500 - 200)

        // Let the survivor push a few more batches (the killed worker's rows included), then stop it.
        yield* waitFor("more pushes by the survivor", "60 seconds", () => {
          const after = pushesIn(log).filter((p) => p.owner === survivor && p.start >= takeover.start)
          return after.filter((p) => p.end !== undefined).length >= 3 ? true : undefined
        }, workers)
        yield* kill(byOwner[survivor], "SIGTERM")

        // Never two pushes at once: an unfinished push of the killed holder ends at the kill.
        const pushes = pushesIn(log)
          .map((p) => ({ ...p, end: p.end ?? killedAt }))
          .sort((x, y) => x.start - y.start)
        for (let i = 1; i < pushes.length; i++) {
          assert.isAtLeast(
            pushes[i].start,
            pushes[i - 1].end,
            `push of ${pushes[i].owner} at ${pushes[i].start} overlaps ${pushes[i - 1].owner}'s`
          )
        }
        assert.isTrue(pushes.some((p) => p.owner === "A") && pushes.some((p) => p.owner === "B"))

        // The survivor stopped gracefully: the lease is released.
        yield* withFile(
          db,
          Effect.gen(function*() {
            const state = yield* (yield* LocalStore.LocalStore).getSyncState("cloud")
            assert.isUndefined(state.leaseOwner, byOwner[survivor].output())
          })
        )
      }),
    180_000
  )

  it.scopedLive(
    "a process SIGKILLed while applying a large pull applies nothing twice and loses nothing",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const db = join(dir, "replica.db")
        const logFile = join(dir, "log.json")
        const total = 1_500
        const writes: Array<Mutation.LocalWrite> = Array.from({ length: total }, (_, i) => ({
          project: "p",
          entity: "doc",
          entityKey: `k${i % 40}`,
          op: i % 11 === 10 ? "delete" : "upsert",
          payload: i % 11 === 10 ? null : { i, text: `value ${i}` }
        }))
        writeFileSync(logFile, JSON.stringify(writes))

        // Kill twice, at different points, each time after a few more pages were pulled.
        let cursor = 0
        for (const [round, pages] of [[0, 4], [1, 6]] as const) {
          const progress = join(dir, `progress-${round}.log`)
          const worker = yield* spawnWorker("pull-worker.mjs", [db, logFile, progress])
          yield* waitFor(`${pages} pages`, "30 seconds", () => readLines(progress).length >= pages ? true : undefined, [
            worker
          ])
          yield* kill(worker, "SIGKILL")
          assert.isFalse(readLines(progress).some((l) => l.startsWith("done")), "killed too late: the pull finished")
          yield* withFile(
            db,
            Effect.gen(function*() {
              const state = yield* (yield* LocalStore.LocalStore).getSyncState("cloud")
              assert.isAbove(state.lastPulledSeq, cursor, `round ${round} made progress`)
              assert.isBelow(state.lastPulledSeq, total)
              cursor = state.lastPulledSeq
              // Exactly the mutations up to the cursor were applied, each once; none stays in the
              // journal (only kept-aside ones would).
              assert.deepStrictEqual(yield* documents, replay(writes.slice(0, cursor)))
              assert.deepStrictEqual(yield* remoteRows, { n: 0, distinct_seqs: 0, max_seq: null })
            })
          )
        }

        // Resume in this process from the cursor against the same log: everything, once.
        yield* withFile(
          db,
          Effect.gen(function*() {
            const store = yield* LocalStore.LocalStore
            const server = yield* CloudTransport.makeMemoryServer
            yield* server.push({ clientId: "origin", mutations: writes.map((w, i) => ({ ...w, clientSeq: i + 1 })) })
            while (true) {
              const since = (yield* store.getSyncState("cloud")).lastPulledSeq
              const page = yield* server.pull(since, 500)
              for (const m of page.mutations) {
                assert.strictEqual(yield* store.applyPulledMutation("cloud", m), "applied")
              }
              if (!page.hasMore) {
                break
              }
            }
            assert.strictEqual((yield* store.getSyncState("cloud")).lastPulledSeq, total)
            assert.deepStrictEqual(yield* documents, replay(writes))
            assert.deepStrictEqual(yield* remoteRows, { n: 0, distinct_seqs: 0, max_seq: null })
            assert.deepStrictEqual(yield* store.listDeadLetters, [])
            assert.deepStrictEqual(
              yield* store.getDocument("p", "doc", "k0"),
              Option.some({ i: 1480, text: "value 1480" })
            )
          })
        )
      }),
    180_000
  )
})
