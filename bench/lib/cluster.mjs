// Starting the pieces of a scenario: servers and replicas as child processes on 127.0.0.1.
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { start } from "./proc.mjs"

const children = join(dirname(fileURLToPath(import.meta.url)), "..", "children")

/** `execArgv` for a child: `--cpu-prof` into the profile directory when profiling. */
export const profileArgs = (ctx, label) =>
  ctx.flags.profile
    ? ["--cpu-prof", `--cpu-prof-dir=${ctx.flags.profile}`, `--cpu-prof-name=${label}-${Date.now()}.cpuprofile`]
    : []

/** A sync server on SQLite (`file`) or PostgreSQL (`url`); with `createToken`, a token for "bench". */
export const startServer = (ctx, label, options) =>
  start(join(children, "server.mjs"), {
    projects: ["bench"],
    sqlStats: ctx.flags.sqlStats,
    serverBuild: ctx.flags.serverBuild,
    ...options
  }, {
    name: label,
    execArgv: profileArgs(ctx, label)
  })

export const startRawServer = (ctx, label, options) => start(join(children, "raw-server.mjs"), options, { name: label })

/** A replica on `file` syncing with `server` (or not, with `sync: false`). */
export const startReplica = (ctx, label, { config = {}, file, nodeArgs = [], server, ...rest }) =>
  start(
    join(children, "replica.mjs"),
    { file, serverUrl: server?.info.url, token: server?.info.token, config, sqlStats: ctx.flags.sqlStats, ...rest },
    { name: label, execArgv: [...profileArgs(ctx, label), ...nodeArgs] }
  )

/** A helper process (load generator, floor, idle baseline): never profiled. */
export const startChild = (ctx, script, label, options = {}) => start(join(children, script), options, { name: label })

/** The slowest statements of a replica (with --sql-stats), for stderr. */
export const logSqlStats = async (ctx, replica) => {
  if (!ctx.flags.sqlStats) return
  const { statements } = await replica.call("sqlStats")
  process.stderr.write(`\nSQL statements of ${replica.name} (calls, total ms):\n`)
  for (const s of statements.slice(0, 15)) {
    process.stderr.write(`${String(s.calls).padStart(9)} ${s.ms.toFixed(0).padStart(8)} ms  ${s.sql}\n`)
  }
}

/** Waits for `promise`, failing when `progress()` (a number) has not grown for `stallMs`. */
export const withStallCheck = async (promise, progress, stallMs, what) => {
  let last = -1
  let lastChange = Date.now()
  let settled = false
  const watch = (async () => {
    while (!settled) {
      await new Promise((resolve) => setTimeout(resolve, 1000))
      if (settled) return
      const now = await progress().catch(() => last)
      if (now !== last) {
        last = now
        lastChange = Date.now()
      } else if (Date.now() - lastChange > stallMs) {
        throw new Error(`${what} stalled at ${now} for ${stallMs / 1000} s`)
      }
    }
  })()
  try {
    return await Promise.race([promise, watch.then(() => promise)])
  } finally {
    settled = true
  }
}
