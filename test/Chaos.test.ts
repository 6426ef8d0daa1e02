/**
 * The end-to-end reliability run: real processes through a real fault proxy.
 *
 * A server process (`autosync serve`) on a SQLite file, a seeded fault proxy in front of it,
 * three replicas, each with an `autosync agent` process and a writer process (the fixture
 * `writer.mjs`, writing through `Documents` into the same file while the agent runs). While the
 * writers write, agents are SIGKILLed at random points and restarted, and the server is SIGKILLed
 * and restarted on the same database file. Then the faults stop, the run waits (bounded) until
 * every replica is quiet, and checks:
 *
 * - the server log holds seqs 1..n once each and no `(client_id, client_seq)` twice;
 * - every local write of every replica is in the log exactly once, with its content, acked;
 * - every replica's documents (`autosync list --json`, per project) equal each other and equal
 *   the log replayed in seq order; no dead letters.
 *
 * The seed is printed (and `AUTOSYNC_E2E_SEED` sets it); so are the faults injected and the rows
 * checked.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { defaultRates, FaultProxy } from "./support/FaultProxy.js"
import {
  assertBuilt,
  createToken,
  prng,
  type Proc,
  Processes,
  sleep,
  startServer,
  tempDir,
  waitFor
} from "./support/processes.js"
import { type Doc, exactlyOnceProblems, inspect, logProblems, replay } from "./support/replicas.js"

// Seed 1: among the proxy's first 100 decisions, every kind of fault occurs at least twice.
const seed = Number(process.env.AUTOSYNC_E2E_SEED ?? 1)
const projects = ["alpha", "beta"]
const replicaCount = 3
const writesPerReplica = 40
const writeDelayMs = 120
const keysPerProject = 6

// Short timings, so that a killed agent's lease expires soon and backoff stays short.
const agentEnv = {
  AUTOSYNC_LEASE_INTERVAL: "2 seconds",
  AUTOSYNC_BASE_BACKOFF: "100 millis",
  AUTOSYNC_MAX_BACKOFF: "1 second",
  AUTOSYNC_PUSH_BATCH_SIZE: "4",
  AUTOSYNC_PULL_BATCH_SIZE: "7"
}

describe("end to end: agents and a server through a fault proxy, with SIGKILLs", () => {
  const procs = new Processes()
  const tmp = tempDir("chaos")
  let proxy: FaultProxy | undefined

  beforeAll(() => assertBuilt())
  afterEach(async () => {
    await procs.killAll()
    await proxy?.close()
  })
  afterAll(() => tmp.remove())

  it("loses nothing, applies nothing twice, and converges", { timeout: 300_000 }, async () => {
    const started = Date.now()
    const random = prng(seed)
    const serverDb = tmp.file("server.db")
    const files = Array.from({ length: replicaCount }, (_, i) => tmp.file(`replica-${i}.db`))
    const token = await createToken(procs, serverDb, projects)
    let server = await startServer(procs, serverDb)
    // About a third of the requests meet a fault: enough that most cycles see one, few enough
    // that syncing (pulls of others' writes over pending local ones) goes on during the chaos.
    const rates = Object.fromEntries(Object.entries(defaultRates).map(([k, v]) => [k, v * 0.6]))
    proxy = await FaultProxy.start({ target: server.url, seed, maxDelayMs: 400, rates })
    const p = proxy

    // Create and enroll each replica before its agent starts.
    await Promise.all(files.map(async (file, i) => {
      const r = await procs.runFixture("writer.mjs", [file, `r${i}`, "0", "0", "0", "1", projects.join(",")])
      expect(r.code, r.stderr).toBe(0)
    }))

    const agents: Array<Proc> = []
    let agentGeneration = 0
    const startAgent = (i: number) => {
      agents[i] = procs.cli(`agent r${i} #${agentGeneration++}`, [
        "agent",
        "--db",
        files[i],
        "--server",
        p.url,
        "--token",
        token,
        "--long-poll",
        "0",
        "--debounce",
        "50 millis",
        "--poll-interval",
        "1 second"
      ], agentEnv)
    }
    files.forEach((_, i) => startAgent(i))

    const writers = files.map((file, i) =>
      procs.fixture(`writer r${i}`, "writer.mjs", [
        file,
        `r${i}`,
        String(seed + i + 1),
        String(writesPerReplica),
        String(writeDelayMs),
        String(keysPerProject),
        projects.join(",")
      ])
    )

    // Chaos while the writers write, and on until pulls met faults too: SIGKILL agents at random
    // points, and the server twice.
    let agentKills = 0
    let serverKills = 0
    const restartServer = async () => {
      await server.proc.kill("SIGKILL")
      serverKills++
      await sleep(random.int(100, 600))
      server = await startServer(procs, serverDb, [], `server #${serverKills + 1}`)
      p.setTarget(server.url)
    }
    // Rounds of 0.3-1 s: the server is SIGKILLed in rounds 3 and 8 (once while the writers write,
    // once around when they finish), an agent at random in most other rounds (at most eight).
    // Until the writers are done, eight rounds passed, and pushes and pulls each met ten faults
    // (or 75 s passed: a loaded machine makes fewer requests, so the chaos lasts longer there).
    const chaosStarted = Date.now()
    const chaosDeadline = chaosStarted + 90_000
    let round = 0
    const chaosGoing = () =>
      writers.some((w) => w.running) || round < 8 ||
      ((p.summary().injectedOnPushes < 10 || p.summary().injectedOnPulls < 10) && Date.now() - chaosStarted < 75_000)
    let writersDoneAt: number | undefined = undefined
    for (const w of writers) void w.exited.then(() => (writersDoneAt = Math.max(writersDoneAt ?? 0, Date.now())))
    while (chaosGoing()) {
      if (Date.now() > chaosDeadline) {
        throw new Error(`the writers did not finish\n${writers.map((w) => w.describe()).join("\n")}`)
      }
      round++
      await sleep(random.int(300, 1000))
      if (round === 3 || round === 8) {
        await restartServer()
      } else if (random.next() < 0.7 && agentKills < 8) {
        // A restarted agent has a new lease owner: it waits for the killed one's lease to expire.
        const i = random.int(0, replicaCount - 1)
        await agents[i].kill("SIGKILL")
        agentKills++
        await sleep(random.int(50, 700))
        startAgent(i)
      }
    }
    for (const w of writers) expect(w.exit?.code, w.describe()).toBe(0)

    // Faults off; every agent running; wait until every replica has pushed and pulled everything.
    p.enabled = false
    const faultsSummary = p.summary()
    const faultsOffAt = Date.now()
    for (const a of agents) expect(a.running, a.describe()).toBe(true)
    let stableSince: number | undefined = undefined
    const quiet = await waitFor("every replica to be in sync with the server", 60_000, async () => {
      const dump = await inspect(procs, files, serverDb)
      const latest = dump.server!.rows.length
      const synced = dump.replicas.every((r) => r.local.length === 0 && r.state?.last_pulled_seq === latest)
      if (!synced) {
        stableSince = undefined
        return undefined
      }
      stableSince ??= Date.now()
      return dump
    }, {
      intervalMs: 500,
      diagnostics: () => [...agents, server.proc].map((a) => a.describe(8)).join("\n")
    })
    const quietAfterMs = (stableSince ?? Date.now()) - faultsOffAt

    // Stop the agents (SIGTERM: they release the lease and exit 0), then read everything.
    const stopped = await Promise.all(agents.map((a) => a.stop()))
    stopped.forEach((exit, i) => expect(exit.code, agents[i].describe()).toBe(0))
    const final = await inspect(procs, files, serverDb)
    const rows = final.server!.rows
    expect(rows.length).toBe(quiet.server!.rows.length)

    expect(logProblems(rows)).toEqual([])
    const clientIds = new Set(final.replicas.map((r) => r.clientId))
    expect(clientIds.size).toBe(replicaCount)
    expect(rows.filter((r) => !clientIds.has(r.client_id))).toEqual([])
    let localRows = 0
    const remoteStatuses: Record<string, number> = {}
    for (const replica of final.replicas) {
      for (const r of replica.remote) remoteStatuses[r.status ?? "null"] = (remoteStatuses[r.status ?? "null"] ?? 0) + 1
      expect(exactlyOnceProblems(replica, rows), replica.file).toEqual([])
      expect(replica.deadLetters, replica.file).toEqual([])
      expect(replica.state?.last_pulled_seq).toBe(rows.length)
      localRows += replica.lastLocalSeq
    }
    expect(localRows).toBe(rows.length)

    // Documents: through the real CLI, per project, against the replayed log.
    const expected = replay(rows)
    let documentsCompared = 0
    for (const project of projects) {
      const want: Array<Doc> = expected.get(project) ?? []
      const lists = await Promise.all(files.map((file) => procs.runCli(["list", "--db", file, "--json", project])))
      for (const [i, list] of lists.entries()) {
        expect(list.code, list.stderr).toBe(0)
        expect(JSON.parse(list.stdout), `${files[i]} ${project}`).toEqual(want)
        documentsCompared += want.length
      }
    }

    console.log(
      `[e2e chaos] seed=${seed} replicas=${replicaCount} writes=${localRows} ` +
        `agent SIGKILLs=${agentKills} server SIGKILLs=${serverKills}\n` +
        `[e2e chaos] proxy: ${faultsSummary.requests} requests (${faultsSummary.pushes} pushes, ` +
        `${faultsSummary.pulls} pulls), ${faultsSummary.injected} faults injected ` +
        `${JSON.stringify(faultsSummary.faults)}\n` +
        `[e2e chaos] on pushes ${JSON.stringify(faultsSummary.pushFaults)}\n` +
        `[e2e chaos] on pulls ${JSON.stringify(faultsSummary.pullFaults)}\n` +
        `[e2e chaos] ${faultsSummary.upstreamErrors} requests met a server that was down (restarting)\n` +
        `[e2e chaos] checked: ${rows.length} log rows (seqs 1..${rows.length}, no duplicate identity), ` +
        `${localRows} local writes exactly once, ${documentsCompared} documents ` +
        `(${replicaCount} replicas x ${projects.length} projects) equal to the replayed log\n` +
        `[e2e chaos] pulled rows by outcome ${JSON.stringify(remoteStatuses)}; ` +
        `set-up ${chaosStarted - started} ms, writers done after ${
          (writersDoneAt ?? faultsOffAt) - chaosStarted
        } ms, ` +
        `chaos ${faultsOffAt - chaosStarted} ms, in sync ${quietAfterMs} ms after the faults stopped, ` +
        `total ${Date.now() - started} ms`
    )
    expect(faultsSummary.injectedOnPushes).toBeGreaterThanOrEqual(5)
    expect(faultsSummary.injectedOnPulls).toBeGreaterThanOrEqual(5)
  })
})
