// `pnpm bench`: runs the scenarios against the BUILT packages and prints one JSON object per
// result (one line each), then a table. Progress goes to stderr. See bench/README.md.
import { mkdirSync } from "node:fs"
import { loadavg } from "node:os"
import { resolve } from "node:path"
import { parseArgs } from "node:util"
import { stopAll } from "./lib/proc.mjs"
import { table } from "./lib/stats.mjs"
import * as Backlog from "./scenarios/backlog.mjs"
import * as Cli from "./scenarios/cli.mjs"
import * as Cost from "./scenarios/cost.mjs"
import * as Growth from "./scenarios/growth.mjs"
import * as Idle from "./scenarios/idle.mjs"
import * as Join from "./scenarios/join.mjs"
import * as Latency from "./scenarios/latency.mjs"
import * as Recovery from "./scenarios/recovery.mjs"
import * as Scale from "./scenarios/scale.mjs"
import * as Store from "./scenarios/store.mjs"
import * as Throughput from "./scenarios/throughput.mjs"

const scenarios = {
  throughput: Throughput,
  latency: Latency,
  backlog: Backlog,
  scale: Scale,
  idle: Idle,
  cost: Cost,
  store: Store,
  recovery: Recovery,
  cli: Cli,
  growth: Growth,
  join: Join
}

const usage = `usage: pnpm bench [options]      (or node bench/run.mjs [options], without the build)

  --only LIST            scenarios to run, comma-separated (${Object.keys(scenarios).join(",")}); default all
  --quick                small sizes, for a smoke run (each flag below still wins)
  --rows N               throughput: documents written on A (default 100000)
  --batches LIST         throughput: write/push/pull batch sizes (default 100,1000)
  --rate N               latency: documents per second on A (default 1000)
  --latency-seconds S    latency: how long A writes (default 20)
  --debounces LIST       latency: A's debounce in ms; "50:100" also sets debounceMaxWait (default 0,50,50:50)
  --backlog-rows N       backlog: pending rows when the server comes back (default 1000000)
  --backlog-batch N      backlog: pushBatchSize (default 1000)
  --backlog-heap-cap MIB backlog: also push min(rows, 200000) with A under --max-old-space-size=MIB,
                         to tell V8's lazy collection from the working set (default 96; 0: skip)
  --clients N            scale: simulated clients (default 100)
  --scale-seconds S      scale: measured seconds per backend, after 1 s of warm-up (default 10)
  --scale-push-batch N   scale: documents per push (default 10)
  --scale-pull-limit N   scale: page size of each pull (default 100)
  --pg-url URL           scale: PostgreSQL (default $AUTOSYNC_TEST_PG_URL or postgres://postgres@127.0.0.1:5432/test)
  --idle-seconds S       idle: measured seconds (default 60)
  --cost-requests N      cost: sequential pushes and pulls per backend (default 500)
  --store-rows N         store: rows through each LocalStore step (default 20000)
  --growth-keys N        growth: keys the writes go to (default 10000)
  --growth-writes LIST   growth: checkpoints, in writes, at which the file is measured (default 10000,100000,1000000)
  --join-rows N          join: mutations in the server's log (default 1000000)
  --join-keys N          join: keys they go to, and the floor's fresh log (default 10000)
  --recovery-agents N     recovery: agents (replica processes) against one server (default 20)
  --outage-seconds S      recovery: how long the server is down (default 60)
  --stall-seconds S      give up on a scenario whose replica makes no progress this long (default 60)
  --server-build DIR     run the servers from another build of @autosync/server, to compare two versions
                         (its dist/ copied under packages/server/, e.g. to packages/server/build/before,
                         so that its imports resolve)
  --profile DIR          write a --cpu-prof profile of every server and replica process into DIR
  --sql-stats            print each replica's SQLite statements by total time (stderr)
  --help`

// `pnpm bench -- --flag` passes the "--" on: skip it.
const args = process.argv.slice(2)
const { values } = parseArgs({
  args: args[0] === "--" ? args.slice(1) : args,
  options: {
    only: { type: "string" },
    quick: { type: "boolean" },
    rows: { type: "string" },
    batches: { type: "string" },
    rate: { type: "string" },
    "latency-seconds": { type: "string" },
    debounces: { type: "string" },
    "backlog-rows": { type: "string" },
    "backlog-batch": { type: "string" },
    "backlog-heap-cap": { type: "string" },
    clients: { type: "string" },
    "scale-seconds": { type: "string" },
    "scale-push-batch": { type: "string" },
    "scale-pull-limit": { type: "string" },
    "pg-url": { type: "string" },
    "idle-seconds": { type: "string" },
    "cost-requests": { type: "string" },
    "store-rows": { type: "string" },
    "growth-keys": { type: "string" },
    "growth-writes": { type: "string" },
    "join-rows": { type: "string" },
    "join-keys": { type: "string" },
    "recovery-agents": { type: "string" },
    "outage-seconds": { type: "string" },
    "stall-seconds": { type: "string" },
    profile: { type: "string" },
    "server-build": { type: "string" },
    "sql-stats": { type: "boolean" },
    help: { type: "boolean" }
  }
})
if (values.help) {
  console.log(usage)
  process.exit(0)
}

const fail = (message) => {
  console.error(`${message}\n\n${usage}`)
  process.exit(2)
}
const positive = (name, fallback) => {
  const raw = values[name]
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) fail(`--${name} must be a positive number, got ${JSON.stringify(raw)}`)
  return n
}
const list = (name, fallback) => values[name] === undefined ? fallback : values[name].split(",").filter(Boolean)

const quick = values.quick === true
const flags = {
  rows: positive("rows", quick ? 2000 : 100_000),
  batches: list("batches", ["100", "1000"]).map(Number),
  rate: positive("rate", 1000),
  latencySeconds: positive("latency-seconds", quick ? 3 : 20),
  latencyVariants: list("debounces", ["0", "50", "50:50"]).map((v) => {
    const [debounce, maxWait] = v.split(":").map(Number)
    return maxWait === undefined ? { debounce } : { debounce, maxWait }
  }),
  backlogRows: positive("backlog-rows", quick ? 5000 : 1_000_000),
  backlogBatch: positive("backlog-batch", 1000),
  backlogHeapCap: values["backlog-heap-cap"] === "0" ? 0 : positive("backlog-heap-cap", 96),
  clients: positive("clients", quick ? 20 : 100),
  scaleSeconds: positive("scale-seconds", quick ? 3 : 10),
  scalePushBatch: positive("scale-push-batch", 10),
  scalePullLimit: positive("scale-pull-limit", 100),
  pgUrl: values["pg-url"] ?? process.env.AUTOSYNC_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test",
  idleSeconds: positive("idle-seconds", quick ? 5 : 60),
  costRequests: positive("cost-requests", quick ? 100 : 500),
  storeRows: positive("store-rows", quick ? 2000 : 20_000),
  growthKeys: positive("growth-keys", quick ? 1000 : 10_000),
  joinRows: positive("join-rows", quick ? 20_000 : 1_000_000),
  joinKeys: positive("join-keys", quick ? 1000 : 10_000),
  growthWrites: list("growth-writes", quick ? ["1000", "10000", "20000"] : ["10000", "100000", "1000000"]).map(Number),
  recoveryAgents: positive("recovery-agents", 20),
  outageSeconds: positive("outage-seconds", quick ? 15 : 60),
  stallSeconds: positive("stall-seconds", 60),
  profile: values.profile === undefined ? undefined : resolve(values.profile),
  serverBuild: values["server-build"] === undefined ? undefined : resolve(values["server-build"]),
  sqlStats: values["sql-stats"] === true
}
if (flags.growthWrites.some((n) => !Number.isInteger(n) || n < 1)) fail("--growth-writes: positive integers")
if (flags.batches.some((b) => !Number.isInteger(b) || b < 1 || b > 1000)) fail("--batches: integers from 1 to 1000")
if (flags.latencyVariants.some((v) => !(v.debounce >= 0) || (v.maxWait !== undefined && !(v.maxWait > 0)))) {
  fail("--debounces: ms >= 0, optionally followed by :maxWait")
}
const only = list("only", Object.keys(scenarios))
for (const name of only) if (!(name in scenarios)) fail(`unknown scenario ${JSON.stringify(name)}`)
if (flags.profile) mkdirSync(flags.profile, { recursive: true })

const started = performance.now()
const ctx = {
  flags,
  // Every result says how busy the machine was: other work on these cores skews wall-clock figures.
  emit: (result) =>
    process.stdout.write(`${JSON.stringify({ ...result, load_avg_1m: Math.round(loadavg()[0] * 100) / 100 })}\n`),
  log: (line) => process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0)} s] ${line}\n`)
}

const rows = [["scenario", "autosync", "floor", "of floor", "target"]]
let failed = false
for (const name of only) {
  try {
    const results = await scenarios[name].run(ctx)
    rows.push(...scenarios[name].tableRows(results))
  } catch (error) {
    failed = true
    ctx.log(`${name} failed: ${error?.stack ?? error}`)
    ctx.emit({ scenario: name, error: String(error?.message ?? error) })
    rows.push([name, "FAILED", "", "", String(error?.message ?? error).slice(0, 80)])
  } finally {
    await stopAll()
  }
}
process.stdout.write(`\n${table(rows)}\n\n(${((performance.now() - started) / 1000).toFixed(0)} s in all`)
process.stdout.write(flags.profile ? `; profiles in ${flags.profile})\n` : ")\n")
process.exit(failed ? 1 : 0)
