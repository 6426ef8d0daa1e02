/**
 * Property: 3–5 replicas writing to a few overlapping keys through a flaky network converge, and
 * every local write is stored exactly once.
 *
 * Each run draws a scenario: the number of replicas, a fault profile, one FaultyTransport seed per
 * replica, whether the managers' own `run` loops are running, batch sizes, and a list of commands:
 * writes, forked `syncNow`s, writes racing a `syncNow` of their own replica (so they land mid-cycle,
 * between its push and its pull), wake-ups and TestClock advances. Then faults are switched off,
 * requests in flight are let finish, the loops are stopped and every replica syncs until quiet.
 * Everything runs under TestClock with seeded Randoms, so a scenario always replays the same way,
 * and delays and timeouts cost no real time.
 *
 * Replaying a failure: fast-check prints `{ seed: …, path: "…" }` above the counterexample. Run
 *
 *   AUTOSYNC_PROP_SEED=<seed> AUTOSYNC_PROP_PATH="<path>" \
 *     pnpm exec vitest run packages/core/test/Convergence.property.test.ts
 *
 * (or put `seed` and `path` into `parameters` below) to run exactly that shrunk counterexample.
 * `AUTOSYNC_PROP_RUNS=<n>` changes the number of runs (200 by default).
 */
import { CloudTransport, LocalStore, SyncConfig, SyncManager } from "@autosync/core"
import { FaultyTransport } from "@autosync/core/testing"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FastCheck as fc, type Fiber, Layer, Logger, LogLevel, Random, TestClock, TestContext } from "effect"
import { documentsOf, replay } from "./fakes.js"

const projects = ["p0", "p1"] as const
const keys = ["k0", "k1", "k2"] as const
const maxDelayMillis = 800
const timeoutMillis = 1_500

const write = {
  project: fc.constantFrom(...projects),
  key: fc.constantFrom(...keys),
  remove: fc.integer({ min: 0, max: 3 }).map((n) => n === 3) // a delete one time in four; shrinks to an upsert
}
const Command = fc.oneof(
  { weight: 5, arbitrary: fc.record({ _tag: fc.constant("write" as const), replica: fc.nat(4), ...write }) },
  {
    // a syncNow, and writes to the same replica after it got `yields` turns to run: mid-cycle writes
    weight: 2,
    arbitrary: fc.record({
      _tag: fc.constant("race" as const),
      replica: fc.nat(4),
      writes: fc.array(fc.record({ ...write, yields: fc.nat(20) }), { minLength: 1, maxLength: 3 })
    })
  },
  { weight: 2, arbitrary: fc.record({ _tag: fc.constant("sync" as const), replica: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("notify" as const), replica: fc.nat(4) }) },
  {
    weight: 2,
    arbitrary: fc.record({ _tag: fc.constant("advance" as const), millis: fc.integer({ min: 1, max: 400 }) })
  },
  {
    weight: 1,
    arbitrary: fc.record({ _tag: fc.constant("advance" as const), millis: fc.integer({ min: 1, max: 5_000 }) })
  }
)

const probability = fc.constantFrom(0, 0.05, 0.1)
const Scenario = fc.record({
  replicas: fc.integer({ min: 3, max: 5 }),
  /** Drives the managers' backoff jitter. */
  seed: fc.integer(),
  /** One FaultyTransport seed per replica. */
  faultSeeds: fc.array(fc.integer(), { minLength: 5, maxLength: 5 }),
  faults: fc.record({
    dropRequest: probability,
    dropResponse: fc.constantFrom(0.05, 0.1, 0.2),
    duplicate: probability,
    serverError: probability,
    unauthorized: probability,
    forbidden: probability,
    timeout: probability,
    delay: fc.constantFrom(0, 0.2, 0.4)
  }),
  /** Whether each manager's own `run` loop is forked (else only the commands run cycles). */
  loops: fc.boolean(),
  pushBatchSize: fc.integer({ min: 1, max: 3 }),
  pullBatchSize: fc.integer({ min: 1, max: 3 }),
  commands: fc.array(Command, { minLength: 1, maxLength: 20 })
})
type Scenario = typeof Scenario extends fc.Arbitrary<infer A> ? A : never

/** Over all runs: the faults injected and the pulled mutations kept aside, to check the storm was real. */
const tally: Record<FaultyTransport.Fault | "keptAside", number> = {
  dropRequest: 0,
  dropResponse: 0,
  duplicate: 0,
  serverError: 0,
  unauthorized: 0,
  forbidden: 0,
  timeout: 0,
  delay: 0,
  keptAside: 0
}

/**
 * Between the faulty wrapper and the server: records, for every push the server answered, which
 * `(clientId, clientSeq)` each server seq was given (answers lost on the way back included).
 */
const recording = (inner: CloudTransport.CloudTransport["Type"], identities: Map<number, string>) =>
  CloudTransport.CloudTransport.of({
    push: (batch) =>
      Effect.tap(inner.push(batch), ({ acceptedSeqs }) =>
        Effect.sync(() =>
          acceptedSeqs.forEach((seq, i) => {
            const identity = `${batch.clientId}#${batch.mutations[i].clientSeq}`
            const known = identities.get(seq)
            assert.isTrue(known === undefined || known === identity, `seq ${seq} given to ${known} and ${identity}`)
            identities.set(seq, identity)
          })
        )),
    pull: inner.pull
  })

/** Counts the pulled mutations the store kept aside (a pull over an un-acked local write of the same key). */
const spying = (store: LocalStore.LocalStore["Type"]): LocalStore.LocalStore["Type"] => ({
  ...store,
  applyPulledMutations: (targetKey, mutations, options) =>
    Effect.tap(store.applyPulledMutations(targetKey, mutations, options), (results) =>
      Effect.sync(() => {
        tally.keptAside += results.filter((r) => r === "kept_aside").length
      }))
})

const runScenario = (scenario: Scenario) =>
  Effect.gen(function*() {
    const server = yield* CloudTransport.makeMemoryServer
    const identities = new Map<number, string>()
    const replicas = yield* Effect.forEach(Array.from({ length: scenario.replicas }, (_, i) => i), (i) =>
      Effect.gen(function*() {
        const clientId = `r${i}`
        const store = yield* LocalStore.makeMemory({ clientId })
        for (const project of projects) {
          yield* store.enroll(project)
        }
        const faulty = yield* FaultyTransport.wrap(recording(CloudTransport.fromMemoryServer(server), identities), {
          seed: scenario.faultSeeds[i],
          probabilities: scenario.faults,
          maxDelay: maxDelayMillis,
          timeout: timeoutMillis
        })
        const config = yield* SyncConfig.make({
          leaseOwner: `w${i}`,
          debounce: "200 millis",
          debounceMaxWait: "1 second",
          pollInterval: "5 seconds",
          baseBackoff: "500 millis",
          maxBackoff: "4 seconds",
          pushBatchSize: scenario.pushBatchSize,
          pullBatchSize: scenario.pullBatchSize
        })
        const manager = yield* SyncManager.make(config).pipe(
          Effect.provide(Layer.mergeAll(
            Layer.succeed(LocalStore.LocalStore, spying(store)),
            Layer.succeed(CloudTransport.CloudTransport, faulty.transport)
          ))
        )
        return { clientId, store, faulty, manager, appended: [] as Array<number> }
      }))
    const at = (index: number) =>
      replicas[index % replicas.length]
    let n = 0
    const append = (r: typeof replicas[number], w: { project: string; key: string; remove: boolean }) =>
      Effect.map(
        r.store.appendLocal("cloud", [{
          project: w.project,
          entity: "doc",
          entityKey: w.key,
          op: w.remove ? "delete" : "upsert",
          payload: w.remove ? null : { by: r.clientId, n: ++n }
        }]),
        (seqs) =>
          void r.appended.push(...seqs)
      )

    // The storm.
    if (scenario.loops) { for (const r of replicas) yield* Effect.forkScoped(r.manager.run) }
    const inFlight: Array<Fiber.RuntimeFiber<unknown>> = []
    for (const command of scenario.commands) {
      switch (command._tag) {
        case "write":
          yield* append(at(command.replica), command)
          break
        case "race": {
          const r = at(command.replica)
          inFlight.push(yield* Effect.forkScoped(r.manager.syncNow))
          for (const w of command.writes) {
            for (let i = 0; i < w.yields; i++) yield* Effect.yieldNow()
            yield* append(r, w)
          }
          break
        }
        case "sync":
          inFlight.push(yield* Effect.forkScoped(at(command.replica).manager.syncNow))
          break
        case "notify":
          yield* at(command.replica).manager.notifyDirty
          break
        case "advance":
          yield* TestClock.adjust(command.millis)
          break
      }
    }

    // Calm: faults off, requests in flight finish (each hangs at most a delay plus a timeout), loops stop.
    for (const r of replicas) yield* r.faulty.setEnabled(false)
    for (let i = 0; i < 10 && inFlight.some((f) => f.unsafePoll() === null); i++) {
      yield* TestClock.adjust(maxDelayMillis + timeoutMillis)
    }
    assert.isTrue(inFlight.every((f) => f.unsafePoll() !== null), "a syncNow still runs after faults were switched off")
    for (const r of replicas) yield* r.manager.stop

    // Settle: every replica syncs (syncNow ignores backoff) until a whole round changes nothing.
    for (let round = 0; round < 4; round++) {
      const before = server.latestSeq()
      for (const r of replicas) {
        const status = yield* r.manager.syncNow
        assert.strictEqual(status.phase, "healthy", `${r.clientId} after the storm: ${JSON.stringify(status)}`)
      }
      const states = yield* Effect.forEach(replicas, (r) => r.store.getSyncState("cloud"))
      if (server.latestSeq() === before && states.every((s) => s.lastPulledSeq === before)) break
    }

    // Converged: every replica holds the log replayed in seq order; nothing pending, skipped or applied twice.
    const log = server.log()
    const expected = replay(log)
    for (const r of replicas) {
      assert.deepStrictEqual(yield* documentsOf(r.store, projects), expected, `${r.clientId}'s documents`)
      assert.strictEqual(yield* r.store.countPending("cloud"), 0, `${r.clientId} has pending rows`)
      assert.strictEqual((yield* r.store.getSyncState("cloud")).lastPulledSeq, server.latestSeq(), r.clientId)
      assert.deepStrictEqual(yield* r.store.listDeadLetters, [], r.clientId)
    }

    // Exactly once: the log is gap-free, each seq has one (clientId, clientSeq), no identity has two
    // seqs, and each replica's journal seqs are exactly its rows in the log.
    assert.deepStrictEqual(log.map((m) => m.seq), log.map((_, i) => i + 1))
    const identityOf = log.map((m) => identities.get(m.seq)!)
    assert.notInclude(identityOf, undefined)
    assert.strictEqual(new Set(identityOf).size, log.length, "a (clientId, clientSeq) was stored twice")
    for (const r of replicas) {
      const mine = (i: number) => identityOf[i].startsWith(`${r.clientId}#`)
      const clientSeq = (i: number) => Number(identityOf[i].split("#")[1])
      const stored = log.flatMap((_, i) => mine(i) ? [clientSeq(i)] : [])
      assert.deepStrictEqual([...stored].sort((a, b) => a - b), r.appended, `${r.clientId}'s rows in the log`)
      // and per project, in journal order
      for (const project of projects) {
        const seqs = log.flatMap((m, i) => mine(i) && m.project === project ? [clientSeq(i)] : [])
        assert.deepStrictEqual(seqs, [...seqs].sort((a, b) => a - b), `${r.clientId}'s ${project} rows out of order`)
      }
    }

    for (const r of replicas) {
      const counts = yield* r.faulty.counts
      for (const fault of FaultyTransport.allFaults) tally[fault] += counts[fault]
    }
  }).pipe(
    Effect.scoped,
    Effect.withRandom(Random.make(scenario.seed)),
    Effect.provide(Layer.merge(TestContext.TestContext, Logger.minimumLogLevel(LogLevel.None)))
  )

const parameters: fc.Parameters<[Scenario]> = {
  numRuns: Number(process.env.AUTOSYNC_PROP_RUNS ?? 200),
  ...(process.env.AUTOSYNC_PROP_SEED ? { seed: Number(process.env.AUTOSYNC_PROP_SEED) } : {}),
  ...(process.env.AUTOSYNC_PROP_PATH ? { path: process.env.AUTOSYNC_PROP_PATH } : {})
}

describe("convergence under faults (property)", () => {
  it("replicas converge to the log replayed in seq order, and every write is stored exactly once", async () => {
    await fc.assert(fc.asyncProperty(Scenario, (scenario) => Effect.runPromise(runScenario(scenario))), parameters)
    if (parameters.path === undefined && parameters.numRuns! >= 200) {
      // the storm was real: over all runs, every kind of fault was injected and pulls met un-acked writes
      for (const [what, count] of Object.entries(tally)) assert.isAbove(count, 0, `no ${what} over all runs`)
    }
  }, 120_000)
})
