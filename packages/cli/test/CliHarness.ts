/**
 * Runs the real `autosync` command (the committed bin shim over `dist/`) as child processes, each
 * test in a sandbox of its own: a fresh temporary directory, a child environment without any
 * `AUTOSYNC_*` variable unless the test sets it, and every child killed when the test finishes,
 * pass or fail. Every wait polls for a condition until a deadline; none sleeps and hopes.
 */
import { Status } from "@autosync/core"
import { Schema } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

/** The committed bin shim, which imports `dist/bin.js` (`pnpm test` builds it first). */
export const bin = fileURLToPath(new URL("../bin/autosync.js", import.meta.url))

/** The parent's environment without `AUTOSYNC_*`, plus `extra`. */
export const childEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("AUTOSYNC_")) env[key] = value
  }
  return { ...env, ...extra }
}

export const stripAnsi = (text: string) => text.replace(/\u001b\[[0-9;]*m/g, "")

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** A started child: its output so far, and a promise of its exit (after its streams closed). */
export interface Child {
  readonly args: ReadonlyArray<string>
  readonly process: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Promise<Exited>
  readonly isRunning: () => boolean
}

export interface RunOptions {
  readonly env?: Record<string, string>
  readonly cwd?: string
  /** Kill the child and fail when it has not exited by then. Defaults to 60 s (a busy machine). */
  readonly timeoutMs?: number
}

const render = (args: ReadonlyArray<string>, stdout: string, stderr: string) =>
  `autosync ${args.join(" ")}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`
const describe = (child: Child) => render(child.args, child.stdout(), child.stderr())

// Every child still running, so that a worker that exits without its test hooks (a crash, a
// timeout that left a test body running) does not leave servers and agents behind.
const everyChild = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of everyChild) child.kill("SIGKILL")
})

/** Polls `probe` until it returns something other than `undefined`, or fails at the deadline. */
export const waitFor = async <A>(
  what: string,
  probe: () => A | undefined | Promise<A | undefined>,
  options: { readonly timeoutMs?: number; readonly intervalMs?: number; readonly detail?: () => string } = {}
): Promise<A> => {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000)
  let lastError: unknown
  while (true) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (error) {
      lastError = error
    }
    if (Date.now() >= deadline) {
      const last = lastError === undefined ? "" : `\nlast error: ${String(lastError)}`
      throw new Error(`timed out waiting for ${what}${last}${options.detail ? `\n${options.detail()}` : ""}`)
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 200))
  }
}

/** A port that nothing listens on (bound once by us, then closed). */
export const unusedPort = () =>
  new Promise<number>((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/** The status `--json` report as printed: snake_case keys, ISO dates (`Status.StatusReport` encoded). */
export type StatusReport = typeof Status.StatusReport.Encoded

/** Parses `status --json` output: exactly a `Status.StatusReport`, no field missing or extra. */
export const parseStatusReport = (text: string): StatusReport =>
  Schema.encodeSync(Status.StatusReport)(
    Schema.decodeUnknownSync(Schema.parseJson(Status.StatusReport))(text, { onExcessProperty: "error" })
  )

export interface Server {
  readonly child: Child
  readonly url: string
}

/** One test's temporary directory and children; `cleanup` kills the children and removes the directory. */
export class Sandbox {
  readonly dir: string
  private readonly children = new Set<Child>()
  private closed = false

  constructor() {
    this.dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "autosync-cli-test-"))
  }

  path(name: string) {
    return Path.join(this.dir, name)
  }

  start(args: ReadonlyArray<string>, options: RunOptions = {}): Child {
    // A test body that outlived its test (a timeout) must not start children nobody will kill.
    if (this.closed) throw new Error(`the sandbox is closed: not starting autosync ${args.join(" ")}`)
    const proc = spawn(process.execPath, [bin, ...args], {
      cwd: options.cwd ?? this.dir,
      env: childEnv(options.env),
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    proc.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    proc.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    let running = true
    const exited = new Promise<Exited>((resolve) => {
      proc.once("error", (error) => {
        running = false
        resolve({ code: null, signal: null, stdout, stderr: `${stderr}\nspawn failed: ${error.message}` })
      })
      proc.once("close", (code, signal) => {
        running = false
        resolve({ code, signal, stdout, stderr })
      })
    })
    const child: Child = {
      args,
      process: proc,
      stdout: () => stdout,
      stderr: () => stderr,
      exited,
      isRunning: () => running
    }
    this.children.add(child)
    everyChild.add(proc)
    void exited.then(() => {
      this.children.delete(child)
      everyChild.delete(proc)
    })
    return child
  }

  /** Runs a command to its end (bounded by `timeoutMs`). */
  async run(args: ReadonlyArray<string>, options: RunOptions = {}): Promise<Exited> {
    const child = this.start(args, options)
    const timeoutMs = options.timeoutMs ?? 60_000
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)))
    const result = await Promise.race([child.exited, timedOut])
    clearTimeout(timer)
    if (result === "timeout") {
      child.process.kill("SIGKILL")
      await child.exited
      throw new Error(`did not exit within ${timeoutMs} ms: ${describe(child)}`)
    }
    return result
  }

  /** Runs a command that must succeed; returns its stdout. */
  async ok(args: ReadonlyArray<string>, options: RunOptions = {}): Promise<string> {
    const result = await this.run(args, options)
    if (result.code !== 0) {
      throw new Error(`exit ${result.code ?? result.signal}: ${render(args, result.stdout, result.stderr)}`)
    }
    return result.stdout
  }

  async status(db: string): Promise<StatusReport> {
    return parseStatusReport(await this.ok(["status", "--db", db, "--json"]))
  }

  /**
   * Waits until the child's stdout or stderr matches `pattern`; fails early if the child exits.
   * The default deadline includes starting node, which takes seconds on a busy machine.
   */
  async waitForOutput(child: Child, pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    return waitFor(`${pattern} from autosync ${child.args[0]}`, () => {
      const match = child.stdout().match(pattern) ?? child.stderr().match(pattern)
      if (match) return match
      if (!child.isRunning()) throw new Error("the child exited")
      return undefined
    }, { timeoutMs, intervalMs: 50, detail: () => describe(child) })
  }

  /** Sends `signal` and waits (bounded) for the exit. */
  async stop(child: Child, signal: NodeJS.Signals, timeoutMs = 15_000): Promise<Exited> {
    child.process.kill(signal)
    const what = `autosync ${child.args[0]} to exit on ${signal}`
    const detail = () => describe(child)
    return waitFor(what, () => child.isRunning() ? undefined : child.exited, { timeoutMs, intervalMs: 50, detail })
  }

  /** `serve --db server.db --port 0` (or `args`), once it printed its address. */
  async serve(args: ReadonlyArray<string> = ["--db", this.path("server.db")]): Promise<Server> {
    const child = this.start(["serve", ...args, "--port", "0"])
    const match = await this.waitForOutput(child, /autosync server listening on (http:\/\/127\.0\.0\.1:(\d+))/)
    return { child, url: match[1] }
  }

  /** `token create … --project P…`; the token is the last line of stdout. */
  async token(store: ReadonlyArray<string>, projects: ReadonlyArray<string>): Promise<string> {
    const stdout = await this.ok(["token", "create", ...store, ...projects.flatMap((p) => ["--project", p])])
    const lines = stdout.trim().split("\n")
    return lines[lines.length - 1].trim()
  }

  async cleanup(): Promise<void> {
    this.closed = true
    const left = [...this.children]
    for (const child of left) if (child.isRunning()) child.process.kill("SIGKILL")
    await Promise.all(
      left.map((child) => Promise.race([child.exited, new Promise((resolve) => setTimeout(resolve, 5_000))]))
    )
    Fs.rmSync(this.dir, { recursive: true, force: true })
  }
}

/** A sandbox removed when the test finishes (pass or fail). */
export const sandbox = (onTestFinished: (fn: () => Promise<void>) => void): Sandbox => {
  const box = new Sandbox()
  onTestFinished(() => box.cleanup())
  return box
}
