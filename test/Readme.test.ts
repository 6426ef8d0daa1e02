/**
 * The README's "Running a server and agents" walkthrough runs as written. Every ```sh block
 * between `<!-- walkthrough:start` and `<!-- walkthrough:end -->` is copied verbatim, in order,
 * into one bash script (under `set -euo pipefail`, with a marker line echoed between blocks so
 * each block's output can be told apart), run from the repository root as a user who just
 * cloned and built it would, without any `AUTOSYNC_*` variable and without `node_modules/.bin`
 * on the PATH (the walkthrough must put `autosync` there itself).
 *
 * Proves: the script exits 0; the `get` on the second replica prints the document the `put` on
 * the first one wrote; `status --json` prints JSON; and the script's last block stopped every
 * process it started in the background (none is left in its process group).
 *
 * The walkthrough serves on a fixed port (8787, as a reader would type it). Runs of this test on
 * one machine take turns through a lock file, and the test waits for the port to be free, so a
 * busy port fails here with a message naming it rather than somewhere in the walkthrough.
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { assertBuilt, repoRoot, sleep, tempDir } from "./support/processes.js"

const shellFences = new Set(["sh", "bash", "shell"])

/** The shell blocks of the README between the walkthrough markers, in order. */
const walkthroughBlocks = (markdown: string): Array<string> => {
  const lines = markdown.split("\n")
  const start = lines.findIndex((line) => line.startsWith("<!-- walkthrough:start"))
  const end = lines.findIndex((line) => line.startsWith("<!-- walkthrough:end"))
  if (start < 0 || end < start) {
    throw new Error("README.md has no `<!-- walkthrough:start … -->` … `<!-- walkthrough:end -->` markers, in order")
  }
  const blocks: Array<string> = []
  let fence: { readonly keep: boolean; readonly lines: Array<string> } | undefined
  for (const line of lines.slice(start + 1, end)) {
    if (fence === undefined) {
      const open = /^```\s*(\S*)/.exec(line)
      if (open) fence = { keep: shellFences.has(open[1]), lines: [] }
    } else if (/^```\s*$/.test(line)) {
      if (fence.keep) blocks.push(fence.lines.join("\n"))
      fence = undefined
    } else {
      fence.lines.push(line)
    }
  }
  if (fence !== undefined) throw new Error("README.md: a code block in the walkthrough is not closed")
  return blocks
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

const marker = (index: number) => `@@walkthrough-block ${index}`

/** The blocks as one script, each preceded by its marker on stdout and stderr. */
const scriptOf = (blocks: ReadonlyArray<string>) =>
  [
    "set -euo pipefail",
    ...blocks.flatMap((block, i) => [`printf '\\n%s\\n' '${marker(i)}'; printf '\\n%s\\n' '${marker(i)}' >&2`, block]),
    `printf '\\n%s\\n' '${marker(blocks.length)}'`,
    ""
  ].join("\n")

/** Each block's stdout, by the markers the script printed (blocks the script did not reach: undefined). */
const outputByBlock = (stdout: string, count: number): Array<string | undefined> =>
  Array.from({ length: count }, (_, i) => {
    const from = stdout.indexOf(`\n${marker(i)}\n`)
    if (from < 0) return undefined
    const to = stdout.indexOf(`\n${marker(i + 1)}\n`, from)
    return to < 0 ? undefined : stdout.slice(from + marker(i).length + 2, to)
  })

/** The environment of a fresh shell: no `AUTOSYNC_*`, no `node_modules/.bin` that pnpm added, no startup files. */
const freshEnv = (tmp: string): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("AUTOSYNC_") && key !== "BASH_ENV" && key !== "ENV") env[key] = value
  }
  const path = (process.env.PATH ?? "").split(Path.delimiter).filter((dir) => !/node_modules[/\\]\.bin$/.test(dir))
  return { ...env, PATH: path.join(Path.delimiter), TMPDIR: tmp }
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Whether a process group still has members. */
const groupAlive = (pgid: number) => isAlive(-pgid)

const portIsFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = Net.createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/** One run of the walkthrough per machine at a time (it serves on a fixed port): an O_EXCL lock file with our pid. */
const acquireLock = async (file: string, timeoutMs: number): Promise<() => void> => {
  const deadline = Date.now() + timeoutMs
  while (true) {
    try {
      Fs.writeFileSync(file, String(process.pid), { flag: "wx" })
      return () => Fs.rmSync(file, { force: true })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    }
    let holder: number
    try {
      holder = Number(Fs.readFileSync(file, "utf8"))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue // released meanwhile
      throw error
    }
    // A holder that died without removing its lock (a killed test run) holds nothing.
    if (Number.isSafeInteger(holder) && holder > 0 && !isAlive(holder)) {
      Fs.rmSync(file, { force: true })
      continue
    }
    if (Date.now() >= deadline) {
      throw new Error(`another run of the README walkthrough (pid ${holder}) still holds ${file} after ${timeoutMs} ms`)
    }
    await sleep(250)
  }
}

/** The `*.log` files the walkthrough wrote (its server's and agents' output), for a failure's message. */
const logsUnder = (dir: string): string =>
  (Fs.readdirSync(dir, { recursive: true, encoding: "utf8" }))
    .filter((name) => name.endsWith(".log"))
    .map((name) => `--- ${name}\n${Fs.readFileSync(Path.join(dir, name), "utf8").slice(-8_000)}`)
    .join("\n")

interface Ran {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly pgid: number
}

// The process groups of the scripts started, killed after the tests whatever happened.
const groups = new Set<number>()

/** Runs the script with bash in its own process group; kills the group at the deadline. */
const runScript = (script: string, env: NodeJS.ProcessEnv, timeoutMs: number) =>
  new Promise<Ran>((resolve, reject) => {
    const child = spawn("bash", ["-c", script], {
      cwd: repoRoot,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"]
    })
    const pgid = child.pid!
    groups.add(pgid)
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      try {
        process.kill(-pgid, "SIGKILL")
      } catch {
        // already gone
      }
      reject(
        new Error(`the walkthrough did not finish within ${timeoutMs} ms\n--- stdout\n${stdout}\n--- stderr\n${stderr}`)
      )
    }, timeoutMs)
    child.once("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    // "exit", not "close": a background process left behind would hold the pipes open.
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      // Let the pipes drain what was written before the exit.
      setTimeout(() => resolve({ code, signal, stdout, stderr, pgid }), 100)
    })
  })

describe("README: Running a server and agents", () => {
  const tmp = tempDir("readme")

  beforeAll(() => assertBuilt())
  afterAll(() => {
    // Whatever the outcome, nothing the walkthrough started outlives the test.
    for (const pgid of groups) if (groupAlive(pgid)) process.kill(-pgid, "SIGKILL")
    tmp.remove()
  })

  it("runs verbatim and the second replica prints the document", { timeout: 420_000 }, async () => {
    const blocks = walkthroughBlocks(Fs.readFileSync(Path.join(repoRoot, "README.md"), "utf8"))
    const find = (what: string, pattern: RegExp) => {
      const index = blocks.findIndex((block) => pattern.test(block))
      if (index < 0) throw new Error(`the README walkthrough has no ${what}`)
      return { index, match: pattern.exec(blocks[index])! }
    }
    const put = find(
      "`autosync put PROJECT ENTITY KEY 'JSON' --db FILE`",
      /autosync put (\S+) (\S+) (\S+) '([^']*)' .*--db (\S+)/
    )
    const [, project, entity, key, json, writer] = put.match
    const get = find(
      `\`autosync get ${project} ${entity} ${key}\` on another replica`,
      new RegExp(
        `autosync get ${escape(project)} ${escape(entity)} ${escape(key)} .*--db (?!${escape(writer)}\\b)(\\S+)`
      )
    )
    const reader = get.match[1]
    for (const db of [writer, reader]) {
      find(`\`autosync agent --db ${db}\``, new RegExp(`autosync agent .*--db ${escape(db)}\\b`))
    }
    const status = find("`autosync status … --json`", /autosync status .*--json/)
    expect(blocks[get.index].trim().split("\n"), "the get has a block of its own, so its output is its block's")
      .toHaveLength(1)
    expect(blocks[status.index].trim().split("\n")).toHaveLength(1)

    const port = Number(/--port (\d+)/.exec(blocks.join("\n"))?.[1] ?? 8787)
    const release = await acquireLock(Path.join(Os.tmpdir(), `autosync-readme-walkthrough-${port}.lock`), 240_000)
    try {
      const deadline = Date.now() + 30_000
      while (!(await portIsFree(port))) {
        if (Date.now() >= deadline) {
          throw new Error(
            `port ${port} on 127.0.0.1 is in use: the README walkthrough serves on it; stop what listens there`
          )
        }
        await sleep(250)
      }
      const ran = await runScript(scriptOf(blocks), freshEnv(tmp.dir), 150_000)
      const detail = `--- stdout\n${ran.stdout}\n--- stderr\n${ran.stderr}\n${logsUnder(tmp.dir)}`
      expect(ran.code, `the walkthrough failed (exit ${ran.code ?? ran.signal})\n${detail}`).toBe(0)
      const outputs = outputByBlock(ran.stdout, blocks.length)
      expect(outputs[get.index], detail).toBe(`${JSON.stringify(JSON.parse(json))}\n`)
      expect(() => JSON.parse(outputs[status.index] ?? ""), detail).not.toThrow()
      expect(groupAlive(ran.pgid), `a process the walkthrough started still runs\n${detail}`).toBe(false)
      console.log(`[e2e readme] ${blocks.length} blocks ran; ${reader} printed ${outputs[get.index]!.trim()}`)
    } finally {
      release()
    }
  })
})
