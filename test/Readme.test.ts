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
 *
 * Also cheap checks that the rest of the README stays true: the Set-up's versions, scripts and CI
 * script; every file it names or links; every `autosync …` command and flag it shows (against
 * `autosync --help`); the Configuration table's defaults and variables (through
 * `SyncConfig.make`/`fromEnv`); every other `AUTOSYNC_*` variable it names is read somewhere.
 */
import { SyncConfig } from "@autosync/core"
import { ConfigProvider, Duration, Effect } from "effect"
import { execFileSync, spawn } from "node:child_process"
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

const killGroups = () => {
  for (const pgid of groups) if (groupAlive(pgid)) process.kill(-pgid, "SIGKILL")
}

describe("README: Running a server and agents", () => {
  beforeAll(() => assertBuilt())
  // Also for a test body cut short by its timeout: nothing the walkthrough started outlives the file.
  afterAll(killGroups)

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
    // The walkthrough's `mktemp -d` lands here (TMPDIR), removed afterwards.
    const tmp = tempDir("readme")
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
      const ran = await runScript(scriptOf(blocks), freshEnv(tmp.dir), 150_000).catch((error: Error) => {
        throw new Error(`${error.message}\n${logsUnder(tmp.dir)}`)
      })
      const detail = `--- stdout\n${ran.stdout}\n--- stderr\n${ran.stderr}\n${logsUnder(tmp.dir)}`
      expect(ran.code, `the walkthrough failed (exit ${ran.code ?? ran.signal})\n${detail}`).toBe(0)
      const outputs = outputByBlock(ran.stdout, blocks.length)
      expect(outputs[get.index], detail).toBe(`${JSON.stringify(JSON.parse(json))}\n`)
      expect(() => JSON.parse(outputs[status.index] ?? ""), detail).not.toThrow()
      expect(groupAlive(ran.pgid), `a process the walkthrough started still runs\n${detail}`).toBe(false)
      console.log(`[e2e readme] ${blocks.length} blocks ran; ${reader} printed ${outputs[get.index]!.trim()}`)
    } finally {
      killGroups()
      tmp.remove()
      release()
    }
  })
})

// ---------------------------------------------------------------------------------------------
// What the rest of the README names exists and its stated defaults hold (cheap checks)
// ---------------------------------------------------------------------------------------------

const readme = () => Fs.readFileSync(Path.join(repoRoot, "README.md"), "utf8")

/** The README's code: every fenced block's lines and every inline code span. */
const codeOf = (markdown: string): Array<string> => {
  const code: Array<string> = []
  let inFence = false
  for (const line of markdown.split("\n")) {
    if (/^```/.test(line)) inFence = !inFence
    else if (inFence) code.push(line)
    else for (const span of line.matchAll(/`([^`]+)`/g)) code.push(span[1])
  }
  return code
}

/** A section's text, from its heading to the next heading of the same or a higher level. */
const section = (markdown: string, heading: string): string => {
  const level = /^#+/.exec(heading)![0].length
  const lines = markdown.split("\n")
  const start = lines.indexOf(heading)
  if (start < 0) throw new Error(`README.md has no section ${JSON.stringify(heading)}`)
  const end = lines.findIndex((line, i) => i > start && new RegExp(`^#{1,${level}} `).test(line))
  return lines.slice(start + 1, end < 0 ? undefined : end).join("\n")
}

/** The command paths of `autosync --help` ("serve", "token create", …), each with its flags. */
const cliCommands = (): Map<string, Set<string>> => {
  const help = execFileSync(process.execPath, [Path.join(repoRoot, "packages/cli/bin/autosync.js"), "--help"], {
    encoding: "utf8",
    env: freshEnv(Os.tmpdir())
  }).replace(/\u001b\[[0-9;]*m/g, "")
  const commands = new Map<string, Set<string>>()
  for (const line of help.slice(help.indexOf("COMMANDS")).split("\n")) {
    const usage = /^\s*- (.+?)(?:\s{2,}|$)/.exec(line)?.[1]
    if (usage === undefined) continue
    const words = usage.split(" ")
    const path = words.slice(0, words.findIndex((w) => !/^[a-z][a-z-]*$/.test(w)) >>> 0).join(" ")
    commands.set(path, new Set(Array.from(usage.matchAll(/--([a-z][a-z-]*)/g), (m) => m[1])))
  }
  return commands
}

/** The .ts and .mjs files under a directory, outside node_modules, dist and build. */
const sourceFiles = (dir: string): Array<string> =>
  Fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = Path.join(dir, entry.name)
    if (entry.isDirectory()) return ["node_modules", "dist", "build"].includes(entry.name) ? [] : sourceFiles(path)
    return /\.(ts|mjs)$/.test(entry.name) ? [path] : []
  })

// Flags every command accepts (@effect/cli's own).
const builtinFlags = new Set(["help", "version", "log-level", "completions", "wizard"])

describe("README: what it names exists", () => {
  it("Set-up: the Node.js and pnpm versions, the pnpm scripts and the CI script", () => {
    const pkg = JSON.parse(Fs.readFileSync(Path.join(repoRoot, "package.json"), "utf8")) as {
      readonly engines: { readonly node: string }
      readonly packageManager: string
      readonly scripts: Record<string, string>
    }
    const setUp = section(readme(), "## Set-up")
    expect(`>=${/Node\.js (\d+)\+/.exec(setUp)?.[1]}`).toBe(pkg.engines.node)
    expect(pkg.packageManager).toMatch(new RegExp(`^pnpm@${/pnpm (\d+)/.exec(setUp)?.[1]}\\.`))
    const builtins = new Set(["install", "exec", "add", "run", "dlx", "pack"])
    const scripts = Array.from(codeOf(readme()).join("\n").matchAll(/(?<![\w-])pnpm ([a-z][\w-]*)/g), (m) => m[1])
    expect(scripts.length).toBeGreaterThan(0)
    for (const script of scripts) {
      expect(builtins.has(script) || script in pkg.scripts, `\`pnpm ${script}\`: no such script`).toBe(true)
    }
    expect(setUp).toContain("`bash .ci/run`")
    expect(Fs.existsSync(Path.join(repoRoot, ".ci/run"))).toBe(true)
  })

  it("Embedding: the example it shows is examples/embed.ts's code, as the file runs", () => {
    const shown = /```ts\n([\s\S]*?)```/.exec(section(readme(), "## Embedding it in an Effect application"))
    expect(shown, "the Embedding section shows a ```ts block").not.toBeNull()
    const file = Fs.readFileSync(Path.join(repoRoot, "examples/embed.ts"), "utf8")
    expect(shown![1]).toBe(file.slice(file.indexOf("import ")))
  })

  it("every file it names or links exists, and every package it names is a workspace package", () => {
    const text = readme()
    const files = [
      ...codeOf(text).filter((c) => /^[\w.-]+(\/[\w.-]+)+\.(ts|mjs|js|md|json)$/.test(c)),
      ...Array.from(text.matchAll(/\]\(([^)#:]+)\)/g), (m) => m[1])
    ]
    expect(files.length).toBeGreaterThan(0)
    for (const file of files) expect(Fs.existsSync(Path.join(repoRoot, file)), `${file} does not exist`).toBe(true)
    const names = new Set(
      Fs.readdirSync(Path.join(repoRoot, "packages")).map((dir) =>
        (JSON.parse(Fs.readFileSync(Path.join(repoRoot, "packages", dir, "package.json"), "utf8")) as {
          readonly name: string
        }).name
      )
    )
    for (const [name] of text.matchAll(/@autosync\/[a-z-]+/g)) expect(names, name).toContain(name)
  })

  it("every `autosync …` command it shows exists, with the flags it shows", () => {
    const commands = cliCommands()
    let seen = 0
    for (const code of codeOf(readme())) {
      for (const match of code.matchAll(/(?<![\w@/.-])autosync ([a-z][a-z-]*(?: [a-z][a-z-]*)?)(.*)/g)) {
        const [first, second] = match[1].split(" ")
        const path = commands.has(`${first} ${second}`) ? `${first} ${second}` : first
        expect(commands.has(path), `\`autosync ${match[1]}\` in the README: no such command`).toBe(true)
        if ([...commands.keys()].some((p) => p.startsWith(`${path} `))) {
          expect(path, `\`autosync ${first}\` needs a subcommand`).not.toBe(first)
        }
        // The flags up to the end of this command (a `;`, `&&`, `|`, a comment or a background `&`).
        const rest = `${path === first ? (second ?? "") : ""}${match[2]}`.split(/;|&&|\|| #| &(?:\s|$)/)[0]
        for (const [, flag] of rest.matchAll(/(?:^|\s)--([a-z][a-z-]*)/g)) {
          const known = commands.get(path)!.has(flag) || builtinFlags.has(flag)
          expect(known, `\`autosync ${path} --${flag}\` in the README: no such flag`).toBe(true)
        }
        seen++
      }
    }
    expect(seen).toBeGreaterThan(10)
  })

  it("Configuration: each field's environment variable and default", () => {
    const rows = section(readme(), "### Configuration").split("\n").filter((line) => line.startsWith("| `"))
    expect(rows.length).toBeGreaterThan(5)
    const defaults = Effect.runSync(SyncConfig.make({}))
    for (const row of rows) {
      const [fieldsCell, envCell, defaultCell] = row.split(" | ")
      const names = (cell: string) => Array.from(cell.matchAll(/`([^`]+)`/g), (m) => m[1])
      const fields = names(fieldsCell) as Array<keyof SyncConfig.SyncConfig>
      const envs = names(envCell)
      expect(envs, row).toHaveLength(fields.length)
      const stated = defaultCell.split(" / ")
      fields.forEach((field, i) => {
        const actual = defaults[field] as unknown
        const text = stated.length === fields.length ? stated[i] : defaultCell
        if (Duration.isDuration(actual)) {
          const [, amount, unit] = /^([\d,]+)(?:\s*(ms|s|min))?/.exec(text) ?? []
          const factor = unit === "min" ? 60_000 : unit === "s" ? 1_000 : 1
          expect(Number(amount?.replace(/,/g, "")) * factor, `${field}'s default, stated as ${text}`)
            .toBe(Duration.toMillis(actual))
        } else if (typeof actual === "number") {
          expect(Number(/^[\d,]+/.exec(text)?.[0].replace(/,/g, "")), `${field}'s default`).toBe(actual)
        } else if (field === "leaseOwner") {
          expect(text).toContain("random `worker-")
          expect(actual).toMatch(/^worker-/)
        } else {
          expect(text, `${field}'s default`).toBe(`\`${String(actual)}\``)
        }
        // The variable sets the field.
        const value = Duration.isDuration(actual) ? "1234 millis" : typeof actual === "number" ? "7" : "readme-check"
        const read = Effect.runSync(
          SyncConfig.fromEnv().pipe(
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map([[envs[i], value]]), { pathDelim: "_" }))
          )
        )
        const got = read[field] as unknown
        expect(Duration.isDuration(got) ? Duration.toMillis(got) : got, `${envs[i]}=${value} sets ${field}`)
          .toBe(Duration.isDuration(actual) ? 1234 : typeof actual === "number" ? 7 : "readme-check")
      })
    }
  })

  it("every AUTOSYNC_* variable it names is read somewhere", () => {
    const configured = new Set(
      Array.from(section(readme(), "### Configuration").matchAll(/AUTOSYNC_[A-Z_]+/g), (m) => m[0])
    )
    const sources = ["packages", "test", "bench"].flatMap((dir) => sourceFiles(Path.join(repoRoot, dir)))
      .map((file) => Fs.readFileSync(file, "utf8")).join("\n")
    const named = new Set(Array.from(readme().matchAll(/AUTOSYNC_[A-Z][A-Z_]*[A-Z]/g), (m) => m[0]))
    expect(named.size).toBeGreaterThan(5)
    // The Configuration table's variables are checked above, through SyncConfig.fromEnv.
    for (const name of named) {
      if (configured.has(name)) continue
      expect(new RegExp(`\\b${name}\\b`).test(sources), `${name} is named in the README but read nowhere`).toBe(true)
    }
  })
})
