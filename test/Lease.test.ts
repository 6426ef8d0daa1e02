/**
 * The lease under contention, across real processes: four processes on one replica file, each
 * running a SyncManager with a 1 s lease while writing; six times, every couple of seconds, one
 * of them is SIGKILLed (every other time the one holding the lease, possibly mid-push; else a
 * random one) and a fresh one (a new lease owner) takes its place. Nothing is counted within a
 * fixed window: after each kill of a holder the test awaits another owner's push, and at the
 * end at least 20 pushes, each with a generous deadline (the machine may be loaded). Each push is logged as an interval by the
 * worker's transport; a push cut short by a kill ends when the process was seen dead.
 *
 * Proves: never two holders at once (no two push intervals overlap), while the lease does move
 * between owners (a killed holder's lease expires and another process takes over).
 */
import { parsePushes, type Push, readLines } from "@autosync/test-support"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { assertBuilt, prng, type Proc, Processes, sleep, tempDir, waitFor } from "./support/processes.js"

describe("the lease across processes", () => {
  const procs = new Processes()
  const tmp = tempDir("lease")

  beforeAll(() => assertBuilt())
  afterEach(() => procs.killAll())
  afterAll(() => tmp.remove())

  it("never has two holders, through SIGKILLs", { timeout: 240_000 }, async () => {
    const random = prng(Number(process.env.AUTOSYNC_E2E_SEED ?? 4242))
    const db = tmp.file("shared.db")
    const log = tmp.file("pushes.log")
    // Create the file first (the workers then open an existing replica).
    const init = await procs.runFixture("writer.mjs", [db, "init", "0", "0", "0", "1", "p"])
    expect(init.code, init.stderr).toBe(0)

    const workerCount = 4
    const workers: Array<Proc> = []
    const deaths = new Map<string, number>()
    let generation = 0
    const owners: Array<string> = []
    const start = (slot: number) => {
      const owner = `w${slot}-g${generation++}`
      owners[slot] = owner
      const proc = procs.fixture(owner, "lease-worker.mjs", [db, log, owner])
      void proc.exited.then((exit) => deaths.set(owner, exit.at))
      workers[slot] = proc
    }
    for (let slot = 0; slot < workerCount; slot++) start(slot)

    /** The pushes logged so far; a push cut short by SIGKILL lasted until its process was seen dead. */
    const readPushes = () => parsePushes(readLines(log))
    const diagnostics = () => workers.map((w) => w.describe()).join("\n---\n")
    // Generous: on a loaded 2-core machine a worker can take seconds to start and push.
    const deadline = 60_000

    const began = Date.now()
    let kills = 0
    let holderKills = 0
    while (kills < 6) {
      await sleep(random.int(1_200, 2_200))
      // Every other kill hits the current holder (the last one to push), so the lease must move.
      const { pushes } = readPushes()
      const last = pushes[pushes.length - 1]
      const holder = kills % 2 === 0 && last !== undefined ? owners.indexOf(last.owner) : -1
      const slot = holder >= 0 ? holder : random.int(0, workerCount - 1)
      for (const w of workers) expect(w.running, w.describe()).toBe(true)
      const killed = owners[slot]
      await workers[slot].kill("SIGKILL")
      const killedAt = Date.now()
      kills++
      start(slot)
      if (holder >= 0) {
        holderKills++
        // The killed holder's lease expires and another process takes over: awaited, not assumed.
        await waitFor(
          `another owner to push after ${killed}, the holder, was killed`,
          deadline,
          () =>
            readPushes().pushes.some((p) => p.owner !== killed && p.start >= killedAt && p.end !== undefined) ||
            undefined,
          { diagnostics }
        )
      }
    }
    // Enough pushes to make "no overlap" mean something, however slow the machine is.
    await waitFor("at least 20 pushes", deadline, () => readPushes().pushes.length >= 20 || undefined, {
      diagnostics
    })
    for (const w of workers) expect(w.running, w.describe()).toBe(true)
    await Promise.all(workers.map((w) => w.kill("SIGKILL")))

    const { open, pushes } = readPushes()
    let cutShort = 0
    for (const push of open.values()) {
      push.end = deaths.get(push.owner)
      expect(push.end, `no death time for ${push.owner}`).toBeDefined()
      cutShort++
    }

    const sorted = [...pushes].sort((a, b) => a.start - b.start)
    const overlaps: Array<string> = []
    let holder: Push | undefined = undefined
    let handovers = 0
    for (const push of sorted) {
      if (holder && push.start < holder.end!) {
        overlaps.push(
          `${push.owner} started at ${push.start} while ${holder.owner} pushed ${holder.start}..${holder.end}`
        )
      }
      if (holder && holder.owner !== push.owner) handovers++
      if (!holder || push.end! > holder.end!) holder = push
    }
    const perOwner = new Map<string, number>()
    for (const push of pushes) perOwner.set(push.owner, (perOwner.get(push.owner) ?? 0) + 1)

    console.log(
      `[e2e lease] ${workerCount} processes on one file for ${Date.now() - began} ms, ${kills} SIGKILLs ` +
        `(${holderKills} of the holder, ${cutShort} mid-push), ${generation} lease owners; ${pushes.length} pushes by ${perOwner.size} owners ` +
        `${JSON.stringify(Object.fromEntries(perOwner))}, ${handovers} handovers, ${overlaps.length} overlaps`
    )
    expect(overlaps).toEqual([])
    // The lease moved (each kill of a holder was followed by another owner's push, awaited above).
    expect(handovers).toBeGreaterThanOrEqual(1)
    expect(perOwner.size).toBeGreaterThanOrEqual(2)
  })
})
