// 5. Idle cost: CPU time used over `seconds` by idle agents (a replica with its manager running
// and nothing to do), each in its own process, measured with process.cpuUsage in that process:
// one with the default config (poll every 30 s) and one with live sync (longPollWait 25 s),
// after 20 s of settling.
// The server's CPU over the same window is reported too, and that of a second server with no
// clients at all (`server_no_clients_cpu_pct_of_core`). Floor: an idle Node process.
import { startChild, startReplica, startServer } from "../lib/cluster.mjs"
import { removeDir, tempDir } from "../lib/proc.mjs"
import { cpuMs, round } from "../lib/stats.mjs"

const settleSeconds = 20

export const run = async (ctx) => {
  const seconds = ctx.flags.idleSeconds
  const dir = tempDir()
  try {
    ctx.log(`idle: ${seconds} s…`)
    const server = await startServer(ctx, "idle-server", { file: `${dir}/server.db`, createToken: true })
    const alone = await startServer(ctx, "idle-server-alone", { file: `${dir}/alone.db` })
    const agents = [
      { label: "default", config: {} },
      { label: "live", config: { longPollWait: "25 seconds" } }
    ]
    const procs = await Promise.all(
      agents.map((agent) =>
        startReplica(ctx, `idle-${agent.label}`, { file: `${dir}/${agent.label}.db`, server, config: agent.config })
      )
    )
    const floor = await startChild(ctx, "idle.mjs", "idle-floor")
    const all = [...procs, server, alone, floor]
    // Let start-up settle before measuring: the first cycles, the long-poll, and the garbage
    // collection and compilation that follow a start (they cost about 1 % of a core for ~20 s).
    await new Promise((resolve) => setTimeout(resolve, settleSeconds * 1000))
    const before = await Promise.all(all.map((p) => p.call("stats")))
    const started = performance.now()
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
    const after = await Promise.all(all.map((p) => p.call("stats")))
    const wallMs = performance.now() - started
    await Promise.all([...procs, floor].map((p) => p.stop()))
    await Promise.all([server.stop(), alone.stop()])
    const pct = (i) => round((100 * cpuMs(before[i], after[i])) / wallMs, 3)
    const floorPct = pct(all.length - 1)
    const results = agents.map((agent, i) => ({
      scenario: "idle",
      agent: agent.label,
      config: agent.config,
      seconds: round(wallMs / 1000, 1),
      after_settling_s: settleSeconds,
      cpu_ms: cpuMs(before[i], after[i]),
      cpu_pct_of_core: pct(i),
      server_cpu_pct_of_core: pct(procs.length),
      server_no_clients_cpu_pct_of_core: pct(procs.length + 1),
      floor_cpu_pct_of_core: floorPct,
      rss_mib: round(after[i].rssMiB, 1),
      target: "cpu_pct_of_core < 1",
      target_met: pct(i) < 1
    }))
    for (const r of results) ctx.emit(r)
    return results
  } finally {
    removeDir(dir)
  }
}

export const tableRows = (results) =>
  results.map((r) => [
    `idle agent, ${r.agent}`,
    `${r.cpu_pct_of_core} % of a core (${r.cpu_ms} ms in ${r.seconds} s; server ${r.server_cpu_pct_of_core} %, ` +
    `without clients ${r.server_no_clients_cpu_pct_of_core} %)`,
    `${r.floor_cpu_pct_of_core} %`,
    "",
    `${r.target}: ${r.target_met ? "met" : "NOT met"}`
  ])
