// 8. CLI start-up: the wall time of one-shot `autosync` commands (`get`, `put`, `status`,
// `list`) on a small replica file, as a user runs them (through the bin shim, which loads the
// bundle), 15 times each, interleaved so that a burst of load on the
// machine hits all variants alike. Beside them: the unbundled build (dist/bin.js, what the shim
// ran before the bundle) and the floor, `node -e 0` (Node's own start-up).
import { spawnSync } from "node:child_process"
import { statSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { removeDir, tempDir } from "../lib/proc.mjs"
import { percentile, round } from "../lib/stats.mjs"

const runs = 15

const cli = fileURLToPath(new URL("../../packages/cli/", import.meta.url))
const targetMs = 500

// What the shim will load: the bundle, unless a package was compiled after it was made.
const bundleIsFresh = () => {
  const mtime = (path) => {
    try {
      return statSync(join(cli, path)).mtimeMs
    } catch {
      return undefined
    }
  }
  const bundle = mtime("dist/bundle/bin.js")
  const built = ["cli", "core", "sqlite", "http", "server"].map((p) => mtime(`../${p}/build/src.tsbuildinfo`) ?? 0)
  return bundle !== undefined && bundle >= Math.max(...built)
}

const timed = (args) => {
  const t = performance.now()
  const result = spawnSync(process.execPath, args, { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } })
  const ms = performance.now() - t
  if (result.status !== 0) throw new Error(`node ${args.join(" ")} exited ${result.status}: ${result.stderr}`)
  return ms
}

export const run = async (ctx) => {
  const dir = tempDir()
  try {
    const db = `${dir}/replica.db`
    const commands = {
      get: ["get", "notes", "note", "n1", "--db", db],
      put: ["put", "notes", "note", "n2", "{\"title\":\"Bench\"}", "--db", db],
      status: ["status", "--db", db],
      list: ["list", "notes", "--db", db]
    }
    const bin = `${cli}bin/autosync.js`
    const unbundled = `${cli}dist/bin.js`
    const bundled = bundleIsFresh()
    timed([bin, "put", "notes", "note", "n1", "{\"title\":\"Hello\"}", "--db", db])
    ctx.log(`cli: ${runs} runs of each command${bundled ? "" : " (the bundle is missing or stale: pnpm build)"}…`)
    const times = { floor: [] }
    for (const name of Object.keys(commands)) times[name] = { bundled: [], unbundled: [] }
    for (let i = 0; i < runs; i++) {
      times.floor.push(timed(["-e", "0"]))
      for (const [name, args] of Object.entries(commands)) {
        times[name].bundled.push(timed([bin, ...args]))
        times[name].unbundled.push(timed([unbundled, ...args]))
      }
    }
    const floor = { median_ms: round(percentile(times.floor, 50)), p90_ms: round(percentile(times.floor, 90)) }
    const results = Object.keys(commands).map((name) => {
      const median = percentile(times[name].bundled, 50)
      const result = {
        scenario: "cli",
        command: name,
        runs,
        bundled,
        median_ms: round(median),
        p90_ms: round(percentile(times[name].bundled, 90)),
        unbundled_median_ms: round(percentile(times[name].unbundled, 50)),
        unbundled_p90_ms: round(percentile(times[name].unbundled, 90)),
        floor,
        target: `median_ms < ${targetMs}`,
        target_met: median < targetMs
      }
      ctx.emit(result)
      return result
    })
    return results
  } finally {
    removeDir(dir)
  }
}

export const tableRows = (results) =>
  results.map((r) => [
    `cli start-up, ${r.command}`,
    `median ${r.median_ms} ms, p90 ${r.p90_ms} ms (unbundled ${r.unbundled_median_ms} ms)`,
    `${r.floor.median_ms} ms`,
    r.floor.median_ms > 0 ? `${round(r.median_ms / r.floor.median_ms, 1)}×` : "",
    `${r.target}: ${r.target_met ? "met" : "NOT met"}`
  ])
