// 8. Recovery after an outage: `--recovery-agents` (20) replicas (each its own process, configured
// as `autosync agent` runs: live sync with longPollWait 25 s, the default backoff up to 5 min)
// against a real `autosync serve`. After a warm-up in which every replica has every other's
// first write, the server is killed (SIGKILL) and for `--outage-seconds` (60) a TCP listener on
// its port accepts and resets every connection, counting them: the requests the agents sent
// while the server was down. Each replica writes 5 documents during the outage. Then the server
// restarts on the same port and file, and the clock runs until every replica is synced: its own
// outage writes acked (nothing pending) and every other replica's applied.
// Figures: the time from the server's return (it listens again) to all synced, and per replica
// (p50, max); the connections per replica per second while down. `warmup_all_synced_s` (the same
// round of writes with the server up) tells what the machine's load alone costs.
import { spawn } from "node:child_process"
import { createServer } from "node:net"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { startReplica } from "../lib/cluster.mjs"
import { removeDir, tempDir } from "../lib/proc.mjs"
import { percentile, round } from "../lib/stats.mjs"

const cliBin = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "packages", "cli", "bin", "autosync.js")
const perOutage = 5
const targetSeconds = 5

// `autosync …args` to completion; its stdout.
const cli = (args) =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliBin, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let err = ""
    child.stdout.on("data", (c) => (out += c))
    child.stderr.on("data", (c) => (err += c))
    child.on("exit", (code) => code === 0 ? resolve(out) : reject(new Error(`autosync ${args[0]}: ${code} ${err}`)))
  })

// `autosync serve --db FILE --port PORT`, resolved once it listens (with its URL).
const serve = (ctx, db, port) =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliBin, "serve", "--db", db, "--port", String(port)], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    const timer = setTimeout(() => reject(new Error(`the server did not listen within 30 s: ${out}`)), 30_000)
    const onData = (chunk) => {
      out += chunk
      const url = /listening on (http:\/\/[0-9.]+:\d+)/.exec(out)?.[1]
      if (url) {
        clearTimeout(timer)
        resolve({ child, url, port: Number(new URL(url).port), at: performance.now() })
      }
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", (c) => ctx.log(`[server] ${String(c).trim()}`))
    child.on("exit", (code) => reject(new Error(`the server exited (${code}) before listening: ${out}`)))
  })

const kill = (child) =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once("exit", resolve)
    child.kill("SIGKILL")
  })

// A listener on the dead server's port: counts connections and resets each at once.
const blackhole = (port) =>
  new Promise((resolve, reject) => {
    const counter = { connections: 0 }
    const server = createServer((socket) => {
      counter.connections++
      socket.resetAndDestroy()
    })
    server.once("error", reject)
    server.listen(port, "127.0.0.1", () => resolve({ counter, close: () => new Promise((r) => server.close(r)) }))
  })

const waitUntil = async (what, timeoutMs, check) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`)
}

export const run = async (ctx) => {
  const { outageSeconds, recoveryAgents: agents } = ctx.flags
  const dir = tempDir()
  const children = []
  try {
    ctx.log(`recovery: ${agents} agents, ${outageSeconds} s outage…`)
    const db = `${dir}/server.db`
    const token = (await cli(["token", "create", "--db", db, "--project", "bench"])).trim().split("\n").pop().trim()
    let server = await serve(ctx, db, 0)
    children.push(server.child)
    const replicas = await Promise.all(
      Array.from({ length: agents }, (_, i) =>
        startReplica(ctx, `recovery-${i}`, {
          file: `${dir}/replica-${i}.db`,
          server: { info: { url: server.url, token } },
          config: { leaseOwner: `agent-${i}`, longPollWait: "25 seconds" }
        }))
    )
    // Warm-up: one write each; every replica applies the others'. Its time is the baseline: how
    // long one round of sync takes on this machine now, with the server up all along.
    const warmupAt = performance.now()
    await Promise.all(replicas.map((r, i) => r.call("write", { batch: 1, from: i * 1000, rows: 1 })))
    const synced = async (r, expected) => {
      const [{ pending }, { applied }] = await Promise.all([r.call("pending"), r.call("applied")])
      return pending === 0 && applied >= expected
    }
    await waitUntil(
      "the warm-up to sync",
      120_000,
      async () => (await Promise.all(replicas.map((r) => synced(r, agents - 1)))).every(Boolean)
    )
    const warmupS = (performance.now() - warmupAt) / 1000

    // The outage: the server dies, a listener on its port counts and resets connections.
    await kill(server.child)
    const hole = await blackhole(server.port)
    const downAt = performance.now()
    await Promise.all(
      replicas.map((r, i) => r.call("write", { batch: perOutage, from: i * 1000 + 1, rows: perOutage }))
    )
    await new Promise((resolve) => setTimeout(resolve, outageSeconds * 1000))
    const downMs = performance.now() - downAt
    const connections = hole.counter.connections
    const statuses = await Promise.all(replicas.map((r) => r.call("status")))
    const maxDeadlineS = Math.max(
      ...statuses.map((s) => (s.status?.backoffUntil ? (new Date(s.status.backoffUntil).getTime() - Date.now()) : 0))
    ) / 1000
    await hole.close()

    // The return: the same file, the same port.
    server = await serve(ctx, db, server.port)
    children.push(server.child)
    const expected = (agents - 1) * (1 + perOutage)
    const done = new Map()
    await waitUntil("every replica to sync after the outage", 600_000, async () => {
      await Promise.all(replicas.map(async (r, i) => {
        if (!done.has(i) && await synced(r, expected)) done.set(i, performance.now() - server.at)
      }))
      return done.size === agents
    })
    const perReplica = [...done.values()].map((ms) => ms / 1000)
    const allS = Math.max(...perReplica)
    await Promise.all(replicas.map((r) => r.stop()))
    const result = {
      scenario: "recovery",
      agents,
      outage_s: round(downMs / 1000, 1),
      max_backoff_left_at_return_s: round(Math.max(0, maxDeadlineS), 1),
      all_synced_after_return_s: round(allS, 2),
      replica_synced_after_return_s: { p50: round(percentile(perReplica, 50), 2), max: round(allS, 2) },
      warmup_all_synced_s: round(warmupS, 2),
      connections_while_down: connections,
      connections_per_agent_per_s_while_down: round(connections / agents / (downMs / 1000), 3),
      target: `all_synced_after_return_s <= ${targetSeconds}`,
      target_met: allS <= targetSeconds
    }
    ctx.emit(result)
    return [result]
  } finally {
    await Promise.all(children.map(kill))
    removeDir(dir)
  }
}

export const tableRows = (results) =>
  results.map((r) => [
    `recovery, ${r.agents} agents, ${r.outage_s} s outage`,
    `all synced ${r.all_synced_after_return_s} s after the server's return (p50 ${r.replica_synced_after_return_s.p50} s); ${r.connections_per_agent_per_s_while_down} conn/agent/s while down`,
    "",
    "",
    `${r.target}: ${r.target_met ? "met" : "NOT met"}`
  ])
