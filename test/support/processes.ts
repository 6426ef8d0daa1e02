/**
 * Real OS processes for the end-to-end tests: the built `autosync` command and the fixture
 * scripts in test/fixtures. Every process is registered in a `Processes` pool whose `killAll`
 * (called from `afterEach`/`afterAll`) SIGKILLs whatever still runs, so a failing test never
 * leaves a child behind. Every wait polls a condition against a deadline.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url))
export const cliBin = join(repoRoot, "packages/cli/bin/autosync.js")
export const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))

/** The packages must be built (`pnpm exec tsc -b tsconfig.build.json`; `pnpm test` does it). */
export const assertBuilt = () => {
  for (const pkg of ["core", "sqlite", "http", "server", "cli"]) {
    const entry = join(repoRoot, "packages", pkg, "dist", "index.js")
    if (!existsSync(entry)) {
      throw new Error(`${entry} is missing: build first (pnpm exec tsc -b tsconfig.build.json)`)
    }
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Polls `check` until it returns something other than `undefined`, for at most `timeoutMs`. */
export const waitFor = async <A>(
  what: string,
  timeoutMs: number,
  check: () => A | undefined | Promise<A | undefined>,
  options: { readonly intervalMs?: number; readonly diagnostics?: () => string } = {}
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown = undefined
  while (true) {
    try {
      const value = await check()
      if (value !== undefined) return value
      lastError = undefined
    } catch (error) {
      lastError = error
    }
    if (Date.now() >= deadline) break
    await sleep(options.intervalMs ?? 50)
  }
  const extra = options.diagnostics ? `\n${options.diagnostics()}` : ""
  const why = lastError === undefined ? "" : `\nlast error: ${String(lastError)}`
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${extra}`)
}

/** The tail of an output stream (servers log every request; keep memory bounded). */
class Tail {
  private text = ""
  constructor(private readonly max = 512 * 1024) {}
  push(chunk: string) {
    this.text += chunk
    if (this.text.length > this.max * 2) this.text = this.text.slice(-this.max)
  }
  get value() {
    return this.text
  }
}

export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly at: number
}

export class Proc {
  readonly exited: Promise<Exit>
  exit: Exit | undefined = undefined
  private readonly out = new Tail()
  private readonly err = new Tail()

  private readonly lineListeners: Array<(line: string, stream: "stdout" | "stderr") => void> = []
  private readonly partial = { stdout: "", stderr: "" }

  constructor(readonly name: string, readonly child: ChildProcess) {
    const feed = (stream: "stdout" | "stderr", chunk: string) => {
      if (this.lineListeners.length === 0) return
      const lines = (this.partial[stream] + chunk).split("\n")
      this.partial[stream] = lines.pop()!
      for (const line of lines) for (const listener of this.lineListeners) listener(line, stream)
    }
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      this.out.push(chunk)
      feed("stdout", chunk)
    })
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.err.push(chunk)
      feed("stderr", chunk)
    })
    this.exited = new Promise((resolve) => {
      child.once("error", (error) => {
        this.err.push(`spawn error: ${String(error)}\n`)
        this.exit ??= { code: -1, signal: null, at: Date.now() }
        resolve(this.exit)
      })
      child.once("exit", (code, signal) => {
        this.exit ??= { code, signal, at: Date.now() }
        resolve(this.exit)
      })
    })
  }

  /** Calls `listener` with every complete line printed from now on (the tails keep only the end). */
  onLine(listener: (line: string, stream: "stdout" | "stderr") => void) {
    this.lineListeners.push(listener)
  }

  get stdout() {
    return this.out.value
  }
  get stderr() {
    return this.err.value
  }
  get running() {
    return this.exit === undefined
  }

  /** Sends `signal` and waits for the process to end; returns when it has. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<Exit> {
    if (this.exit) return this.exit
    this.child.kill(signal)
    return await this.exited
  }

  /** SIGTERM, then SIGKILL if it is still running after `graceMs`. */
  async stop(graceMs = 5_000): Promise<Exit> {
    if (this.exit) return this.exit
    this.child.kill("SIGTERM")
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }

  /** Waits for the process to end; SIGKILLs it and fails (with its last `lines` of output) after `timeoutMs`. */
  async finish(timeoutMs: number, lines = 30): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)))
    const outcome = await Promise.race([this.exited, timedOut])
    clearTimeout(timer)
    if (outcome === "timeout") {
      await this.kill("SIGKILL")
      throw new Error(`${this.name} did not finish within ${timeoutMs} ms\n${this.describe(lines)}`)
    }
    return outcome
  }

  describe(lines = 30) {
    const tail = (s: string) => s.split("\n").slice(-lines).join("\n")
    return `--- ${this.name} (${this.exit ? `exited ${this.exit.code ?? this.exit.signal}` : "running"})\n` +
      `stdout:\n${tail(this.stdout)}\nstderr:\n${tail(this.stderr)}`
  }
}

export interface Result {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** A pool of child processes, all killed by `killAll`. */
export class Processes {
  private readonly all = new Set<Proc>()

  spawn(name: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): Proc {
    const child = spawn(process.execPath, [...args], {
      cwd: repoRoot,
      env: { ...process.env, NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    const proc = new Proc(name, child)
    this.all.add(proc)
    void proc.exited.then(() => this.all.delete(proc))
    return proc
  }

  /** `autosync …args` from the built CLI. */
  cli(name: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): Proc {
    return this.spawn(name, [cliBin, ...args], env)
  }

  /** `node [flags] test/fixtures/<script> …args`. */
  fixture(
    name: string,
    script: string,
    args: ReadonlyArray<string>,
    options: { readonly nodeFlags?: ReadonlyArray<string>; readonly env?: Record<string, string> } = {}
  ): Proc {
    return this.spawn(name, [...(options.nodeFlags ?? []), fixture(script), ...args], options.env)
  }

  /** Waits for a process to end, SIGKILLing it (and failing) after `timeoutMs`. */
  async finish(proc: Proc, timeoutMs = 30_000): Promise<Result> {
    const outcome = await proc.finish(timeoutMs)
    return { code: outcome.code, signal: outcome.signal, stdout: proc.stdout, stderr: proc.stderr }
  }

  /** Runs `autosync …args` to completion. */
  runCli(
    args: ReadonlyArray<string>,
    options: { readonly env?: Record<string, string>; readonly timeoutMs?: number } = {}
  ) {
    return this.finish(this.cli(`autosync ${args[0] ?? ""}`, args, options.env), options.timeoutMs)
  }

  /** Runs a fixture script to completion. */
  runFixture(
    script: string,
    args: ReadonlyArray<string>,
    options: {
      readonly nodeFlags?: ReadonlyArray<string>
      readonly env?: Record<string, string>
      readonly timeoutMs?: number
    } = {}
  ) {
    return this.finish(this.fixture(script, script, args, options), options.timeoutMs)
  }

  get running(): ReadonlyArray<Proc> {
    return [...this.all].filter((p) => p.running)
  }

  async killAll(): Promise<void> {
    await Promise.all([...this.all].map((p) => p.kill("SIGKILL")))
    this.all.clear()
  }
}

/** A fresh temporary directory and its removal. */
export const tempDir = (prefix: string, parent: string = tmpdir()) => {
  const dir = mkdtempSync(join(parent, `autosync-${prefix}-`))
  return { dir, file: (name: string) => join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Starts `autosync serve --db FILE --port 0 …` and waits for its address. */
export const startServer = async (
  procs: Processes,
  db: string,
  extraArgs: ReadonlyArray<string> = [],
  name = "server"
): Promise<{ readonly proc: Proc; readonly url: string }> => {
  const proc = procs.cli(name, ["serve", "--db", db, "--port", "0", ...extraArgs])
  const url = await waitFor(`${name} to listen`, 30_000, () => {
    if (!proc.running) throw new Error(`${name} exited\n${proc.describe()}`)
    return /listening on (http:\/\/[0-9.]+:\d+)/.exec(proc.stdout)?.[1]
  }, { diagnostics: () => proc.describe() })
  return { proc, url }
}

/** `autosync token create --db FILE --project …`: the token (the last line of stdout). */
export const createToken = async (procs: Processes, db: string, projects: ReadonlyArray<string>) => {
  const result = await procs.runCli(["token", "create", "--db", db, ...projects.flatMap((p) => ["--project", p])])
  if (result.code !== 0) throw new Error(`token create failed (${result.code}): ${result.stderr}`)
  const token = result.stdout.trim().split("\n").pop()!.trim()
  if (token.length === 0) throw new Error(`token create printed no token: ${result.stdout}`)
  return token
}

/** A small seeded PRNG (mulberry32), so fault schedules are reproducible from a seed. */
export const prng = (seed: number) => {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <A>(items: ReadonlyArray<A>): A => items[Math.floor(next() * items.length)]
  }
}
