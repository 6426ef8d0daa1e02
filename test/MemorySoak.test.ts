/**
 * A memory soak: in a child process run with --expose-gc (the `soak.mjs` fixture), a real sync
 * server (SQLite file, HTTP on 127.0.0.1) and a real replica (SQLite file, HTTP transport,
 * SyncManager) sync a couple of thousand times: a small write, then `syncNow` (a push and a pull
 * over HTTP). Heap and RSS are measured after a full GC at the end of the warm-up and at the end.
 *
 * Proves: memory holds steady over many cycles (growth under a generous bound: this machine is
 * noisy), and every cycle synced (healthy, nothing pending, every row pulled back).
 * `AUTOSYNC_SOAK_CYCLES` sets the number of cycles (default 2000).
 */
import { existsSync } from "node:fs"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { assertBuilt, Processes, tempDir } from "./support/processes.js"

interface Sample {
  readonly cycle: number
  readonly heapUsedMB: number
  readonly rssMB: number
}

describe("memory soak", () => {
  const procs = new Processes()
  // Memory, not the disk, is under test here: use tmpfs when there is one (no fsync per commit).
  const dir = tempDir("soak", existsSync("/dev/shm") ? "/dev/shm" : undefined)

  beforeAll(() => assertBuilt())
  afterEach(() => procs.killAll())
  afterAll(() => dir.remove())

  it("holds steady memory over thousands of sync cycles", { timeout: 170_000 }, async () => {
    const cycles = Number(process.env.AUTOSYNC_SOAK_CYCLES ?? 2000)
    const warmup = Math.max(1, Math.floor(cycles / 4))
    const result = await procs.runFixture("soak.mjs", [dir.dir, String(cycles), String(warmup)], {
      nodeFlags: ["--expose-gc"],
      timeoutMs: 160_000
    })
    expect(result.code, result.stderr).toBe(0)
    const report = JSON.parse(result.stdout.trim().split("\n").pop()!) as {
      readonly cycles: number
      readonly ms: number
      readonly notHealthy: number
      readonly pending: number
      readonly lastPulledSeq: number
      readonly atWarmup: Sample
      readonly atEnd: Sample
      readonly heapGrowthMB: number
      readonly rssGrowthMB: number
      readonly samples: ReadonlyArray<Sample>
    }
    console.log(
      `[e2e soak] ${report.cycles} sync cycles (write + push + pull over HTTP, real SQLite) in ${report.ms} ms ` +
        `(${(report.ms / report.cycles).toFixed(1)} ms/cycle); after GC: heap ${report.atWarmup.heapUsedMB} MB ` +
        `at cycle ${report.atWarmup.cycle} → ${report.atEnd.heapUsedMB} MB at the end ` +
        `(${report.heapGrowthMB >= 0 ? "+" : ""}${report.heapGrowthMB} MB), RSS ${report.atWarmup.rssMB} → ` +
        `${report.atEnd.rssMB} MB (${report.rssGrowthMB >= 0 ? "+" : ""}${report.rssGrowthMB} MB)\n` +
        `[e2e soak] samples (cycle: heap/RSS MB): ${
          report.samples.map((s) => `${s.cycle}: ${s.heapUsedMB}/${s.rssMB}`).join(", ")
        }`
    )
    expect(report.notHealthy).toBe(0)
    expect(report.pending).toBe(0)
    expect(report.lastPulledSeq).toBe(cycles)
    expect(report.heapGrowthMB).toBeLessThan(50)
    expect(report.rssGrowthMB).toBeLessThan(50)
  })
})
