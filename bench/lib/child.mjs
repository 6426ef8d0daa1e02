// The child side of lib/proc.mjs: command dispatch over IPC, resource figures, exit with the parent.
import { readFileSync } from "node:fs"

/** Peak and current resident set size of this process, in MiB (Linux /proc; rss only elsewhere). */
export const memory = () => {
  const rssMiB = process.memoryUsage().rss / 2 ** 20
  try {
    const status = readFileSync("/proc/self/status", "utf8")
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status)
    return { rssMiB, peakRssMiB: hwm ? Number(hwm[1]) / 1024 : rssMiB }
  } catch {
    return { rssMiB, peakRssMiB: rssMiB }
  }
}

export const stats = () => {
  const cpu = process.cpuUsage()
  return { cpuUserUs: cpu.user, cpuSystemUs: cpu.system, ...memory() }
}

const defaults = {
  stats,
  /** The statements by time, when lib/sqlstats.mjs was installed in this process (else none). */
  sqlStats: async () => ({ statements: (await import("./sqlstats.mjs")).report() })
}

/** The options the runner passed (JSON in argv[2]). */
export const options = () => JSON.parse(process.argv[2] ?? "{}")

/**
 * Serves commands: `handlers[cmd](message)` returns (a promise of) the reply's fields. `stop`
 * runs `onStop` then exits 0 (so a --cpu-prof profile is written). When the runner goes away,
 * the child exits too.
 */
export const serve = (info, handlers, onStop = async () => {}) => {
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    try {
      await onStop()
    } finally {
      process.exit(0)
    }
  }
  process.on("disconnect", () => void stop())
  process.on("message", async (message) => {
    if (message.cmd === "stop") return stop()
    const handler = handlers[message.cmd] ?? defaults[message.cmd]
    try {
      if (!handler) throw new Error(`unknown command ${message.cmd}`)
      const reply = await handler(message)
      process.send({ id: message.id, ok: true, ...reply })
    } catch (error) {
      process.send({ id: message.id, ok: false, error: String(error?.stack ?? error) })
    }
  })
  process.send({ type: "ready", pid: process.pid, ...info })
}
