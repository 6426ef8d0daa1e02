// Child processes and temporary directories of a bench run, all cleaned up on the way out
// (normal end, error, Ctrl-C). Children talk to the runner over IPC: each sends
// `{ type: "ready", ... }` once started and answers `{ id, cmd, ... }` with `{ id, ok, ... }`.
import { fork } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const children = new Set()
const handles = new Set()
const dirs = new Set()

export const tempDir = (prefix = "autosync-bench-") => {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  dirs.add(dir)
  return dir
}

export const removeDir = (dir) => {
  rmSync(dir, { recursive: true, force: true })
  dirs.delete(dir)
}

const killAll = () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  }
  children.clear()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  dirs.clear()
}

process.on("exit", killAll)
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    killAll()
    process.exit(130)
  })
}

/** Stops every child still running (a scenario that failed half-way), killing the slow ones. */
export const stopAll = async () => {
  await Promise.all([...handles].map((handle) => handle.stop(5000).catch(() => {})))
}

/**
 * Forks `script` with `options` (as JSON in argv[2]) and waits for its ready message.
 * Its stdout and stderr go to our stderr, prefixed with `name`: our stdout carries only results.
 */
export const start = (script, options, { name, execArgv = [], readyTimeoutMs = 60_000 } = {}) =>
  new Promise((resolve, reject) => {
    const child = fork(script, [JSON.stringify(options)], {
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      execArgv: ["--enable-source-maps", ...execArgv]
    })
    children.add(child)
    const prefix = (chunk) =>
      String(chunk).split("\n").filter((l) => l.length > 0).map((l) => `[${name}] ${l}\n`).join("")
    child.stdout.on("data", (chunk) => process.stderr.write(prefix(chunk)))
    child.stderr.on("data", (chunk) => process.stderr.write(prefix(chunk)))
    const pending = new Map()
    let nextId = 1
    const handle = {
      name,
      pid: child.pid,
      info: undefined,
      call: (cmd, args = {}, timeoutMs = 600_000) =>
        new Promise((res, rej) => {
          if (child.exitCode !== null || child.signalCode !== null) {
            rej(new Error(`${name} has exited`))
            return
          }
          const id = nextId++
          const timer = setTimeout(() => {
            pending.delete(id)
            rej(new Error(`${name}: ${cmd} timed out after ${timeoutMs} ms`))
          }, timeoutMs)
          pending.set(id, { res, rej, timer })
          child.send({ id, cmd, ...args })
        }),
      /** Asks the child to stop (it closes its resources and exits), then waits for the exit. */
      stop: async (timeoutMs = 15_000) => {
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise((res) => child.once("exit", res))
        child.send({ id: 0, cmd: "stop" })
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
        await exited
        clearTimeout(timer)
        children.delete(child)
      }
    }
    handles.add(handle)
    const readyTimer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${name} did not start within ${readyTimeoutMs} ms`))
    }, readyTimeoutMs)
    child.on("message", (message) => {
      if (message.type === "ready") {
        clearTimeout(readyTimer)
        handle.info = message
        resolve(handle)
        return
      }
      const entry = pending.get(message.id)
      if (!entry) return
      pending.delete(message.id)
      clearTimeout(entry.timer)
      if (message.ok) entry.res(message)
      else entry.rej(new Error(`${name}: ${message.error}`))
    })
    child.on("exit", (code, signal) => {
      children.delete(child)
      handles.delete(handle)
      clearTimeout(readyTimer)
      const error = new Error(`${name} exited (code ${code}, signal ${signal})`)
      for (const { rej, timer } of pending.values()) {
        clearTimeout(timer)
        rej(error)
      }
      pending.clear()
      if (handle.info === undefined) reject(error)
    })
  })
