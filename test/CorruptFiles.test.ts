/**
 * Damaged local files and malformed pulled rows.
 *
 * Files: a real replica (300 documents of about 1 KB) is copied and damaged: truncated in the
 * middle (page-aligned or not), cut to a few bytes, its header overwritten, replaced by random
 * bytes, a run of pages in the middle overwritten with random bytes. On each, `autosync status`,
 * `list` and `get` must fail with exit code 1 and a one-line message naming the file, or (only
 * where the damage does not touch what they read) succeed with exactly the undamaged answer:
 * never a silent success with wrong or missing data. A refused file is left as it was, and an
 * agent on it exits non-zero at once.
 *
 * Pulled rows: a tiny fake server answers `/v1/pull` with crafted pages (a row with an unknown
 * op, wrong types, a payload too deep, unsafe numbers, NUL, bad dates, seqs out of order or
 * repeated, no progress with has_more, bodies that are not JSON). For each, a real agent must end
 * up with status `pull_failed`/`transport_failed` and a message (its cursor not past the bad
 * row), or put the row in the dead letters and go on: never skip it silently.
 */
import { limited } from "@autosync/test-support"
import {
  closeSync,
  copyFileSync,
  existsSync,
  openSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync
} from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { basename } from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { assertBuilt, prng, type Proc, Processes, type Result, tempDir, waitFor } from "./support/processes.js"
import { inspect } from "./support/replicas.js"

const pageSize = 4096

describe("damaged replica files", () => {
  const procs = new Processes()
  const tmp = tempDir("corrupt")
  const original = tmp.file("original.db")
  const commands: ReadonlyArray<ReadonlyArray<string>> = [
    ["status", "--json"],
    ["list", "--json", "p"],
    ["get", "p", "note", "k299"]
  ]
  const healthy = new Map<string, Result>()
  const key = (command: ReadonlyArray<string>) => command.join(" ")
  const run = (file: string, command: ReadonlyArray<string>) =>
    procs.runCli([command[0], "--db", file, ...command.slice(1)], { timeoutMs: 30_000 })

  beforeAll(async () => {
    assertBuilt()
    const fill = await procs.runFixture("fill.mjs", [original, "300", "1000"], { timeoutMs: 60_000 })
    expect(fill.code, fill.stderr).toBe(0)
    expect(existsSync(`${original}-wal`) && statSync(`${original}-wal`).size > 0).toBe(false)
    // The answers on the undamaged file (from a copy, so the original is never opened again).
    const copy = tmp.file("healthy.db")
    copyFileSync(original, copy)
    for (const command of commands) {
      // One at a time: the first run migrates nothing, but the commands share one file.
      const result = await run(copy, command)
      expect(result.code, result.stderr).toBe(0)
      healthy.set(key(command), result)
    }
  }, 120_000)
  afterEach(() => procs.killAll())
  afterAll(() => tmp.remove())

  const size = () => statSync(original).size
  const random = prng(99)
  const randomBytes = (n: number) => Buffer.from(Array.from({ length: n }, () => random.int(0, 255)))

  const variants: ReadonlyArray<{
    readonly name: string
    readonly damage: (file: string) => void
    /** Whether every command must fail (else a command may succeed with the undamaged answer). */
    readonly allFail: boolean
  }> = [
    {
      name: "truncated at half, mid-page",
      damage: (f) => truncateSync(f, Math.floor(size() / 2) - 1234),
      allFail: true
    },
    {
      name: "truncated at a quarter, page-aligned",
      damage: (f) => truncateSync(f, Math.floor(size() / 4 / pageSize) * pageSize),
      allFail: true
    },
    { name: "truncated to 50 bytes", damage: (f) => truncateSync(f, 50), allFail: true },
    {
      name: "header overwritten",
      damage: (f) => {
        const fd = openSync(f, "r+")
        writeSync(fd, Buffer.from("this is not the header you are looking for; ".repeat(3)), 0, 100, 0)
        closeSync(fd)
      },
      allFail: true
    },
    { name: "random bytes", damage: (f) => writeFileSync(f, randomBytes(size())), allFail: true },
    {
      name: "16 pages in the middle overwritten with random bytes",
      damage: (f) => {
        const fd = openSync(f, "r+")
        const start = Math.floor(size() / 2 / pageSize) * pageSize
        writeSync(fd, randomBytes(16 * pageSize), 0, 16 * pageSize, start)
        closeSync(fd)
      },
      allFail: false
    }
  ]

  it(
    "status, list and get fail clearly, naming the file, or answer exactly as before",
    { timeout: 120_000 },
    async () => {
      const files = variants.map((v, i) => {
        const file = tmp.file(`damaged-${i}.db`)
        copyFileSync(original, file)
        v.damage(file)
        return file
      })
      const before = files.map((f) => readFileSync(f))
      const jobs = variants.flatMap((variant, i) =>
        commands.map((command) => async () => ({
          variant,
          file: files[i],
          command,
          result: await run(files[i], command)
        }))
      )
      const outcomes = await limited(3, jobs)

      const table: Array<string> = []
      let failedClearly = 0
      for (const { command, file, result, variant } of outcomes) {
        const what = `${variant.name}: autosync ${key(command)}`
        const message = result.stderr.trim()
        if (result.code === 0) {
          // Allowed only where the damage is elsewhere: then the answer is exactly the undamaged one.
          expect(variant.allFail, `${what} succeeded:\n${result.stdout.slice(0, 300)}`).toBe(false)
          const want = healthy.get(key(command))!.stdout
          const strip = (s: string) => command[0] === "status" ? s.replace(/"file": "[^"]*"/, "") : s
          expect(strip(result.stdout), what).toBe(strip(want))
          table.push(`${what} → exit 0 with the undamaged answer`)
          continue
        }
        expect(result.code, `${what}\n${message}`).toBe(1)
        expect(result.stdout, what).toBe("")
        expect(message, what).toMatch(/^autosync: /)
        expect(message.split("\n"), `${what}: one line`).toHaveLength(1)
        expect(message, `${what} names the file`).toContain(basename(file))
        expect(message, what).not.toMatch(/\bat .*\.js:\d+/)
        failedClearly++
        table.push(`${what} → exit 1: ${message}`)
      }
      // Nothing was written into a damaged file.
      files.forEach((f, i) => expect(readFileSync(f).equals(before[i]), `${variants[i].name} unchanged`).toBe(true))

      console.log(
        `[e2e corrupt] ${outcomes.length} commands on ${variants.length} damaged files: ${failedClearly} failed clearly ` +
          `naming the file, ${outcomes.length - failedClearly} answered exactly as on the undamaged file\n` +
          table.map((line) => `  ${line}`).join("\n")
      )
    }
  )

  it("an agent on a damaged file exits non-zero at once, naming the file", { timeout: 60_000 }, async () => {
    const results = await Promise.all(
      variants.filter((v) => v.allFail).slice(0, 2).map(async (variant, i) => {
        const file = tmp.file(`agent-${i}.db`)
        copyFileSync(original, file)
        variant.damage(file)
        const result = await procs.runCli([
          "agent",
          "--db",
          file,
          "--server",
          "http://127.0.0.1:9",
          "--token",
          "t"
        ], { timeoutMs: 30_000 })
        return { variant, file, result }
      })
    )
    for (const { file, result, variant } of results) {
      expect(result.code, `${variant.name}: ${result.stderr}`).toBe(1)
      expect(result.stderr, variant.name).toContain(basename(file))
    }
  })
})

// ---------------------------------------------------------------------------------------------
// malformed pulled rows
// ---------------------------------------------------------------------------------------------

const row = (seq: unknown, overrides: Record<string, unknown> = {}) => ({
  seq,
  project: "p",
  entity: "note",
  entity_key: `k${String(seq)}`,
  op: "upsert",
  payload: { seq },
  occurred_at: "2026-01-01T00:00:00.000Z",
  ...overrides
})

/** A page with a good row 1, the bad row 2 and a good row 3 (as JSON text). */
const withBadRow = (bad: Record<string, unknown> | string) => (since: number) => {
  // Rows after the cursor, the bad one counting as seq 2.
  const rows = [row(1), typeof bad === "string" ? "BAD" : bad, row(3)].filter((_, i) => i + 1 > since)
  const text = JSON.stringify({ mutations: rows, has_more: false, latest_seq: 3 })
  return typeof bad === "string" ? text.replace("\"BAD\"", bad) : text
}

const cases: ReadonlyArray<{
  readonly name: string
  readonly page: (since: number) => string
  readonly deadLetter?: boolean
}> = [
  { name: "an op no applier knows", page: withBadRow(row(2, { op: "explode" })), deadLetter: true },
  {
    name: "an upsert without a payload",
    page: withBadRow(
      "{\"seq\":2,\"project\":\"p\",\"entity\":\"note\",\"entity_key\":\"k2\",\"op\":\"upsert\",\"occurred_at\":\"2026-01-01T00:00:00.000Z\"}"
    )
  },
  { name: "seq as a string", page: withBadRow(row("2")) },
  { name: "a fractional seq", page: withBadRow(row(2.5)) },
  { name: "an empty entity_key", page: withBadRow(row(2, { entity_key: "" })) },
  { name: "a project that is a number", page: withBadRow(row(2, { project: 42 })) },
  {
    name: "a payload nested 100 levels",
    page: withBadRow(
      `{"seq":2,"project":"p","entity":"note","entity_key":"k2","op":"upsert","payload":${"[".repeat(100)}${
        "]".repeat(100)
      },"occurred_at":"2026-01-01T00:00:00.000Z"}`
    )
  },
  {
    name: "an unsafe integer in the payload",
    page: withBadRow(
      `{"seq":2,"project":"p","entity":"note","entity_key":"k2","op":"upsert","payload":{"n":9007199254740993},"occurred_at":"2026-01-01T00:00:00.000Z"}`
    )
  },
  { name: "a NUL in the payload", page: withBadRow(row(2, { payload: "a\u0000b" })) },
  {
    name: "a lone surrogate in the key",
    page: withBadRow(
      `{"seq":2,"project":"p","entity":"note","entity_key":"k\\ud800","op":"upsert","payload":1,"occurred_at":"2026-01-01T00:00:00.000Z"}`
    )
  },
  { name: "a date that is not one", page: withBadRow(row(2, { occurred_at: "yesterday" })) },
  {
    name: "seqs out of order",
    page: () => JSON.stringify({ mutations: [row(1), row(3), row(2)], has_more: false, latest_seq: 3 })
  },
  {
    name: "a seq repeated",
    page: () => JSON.stringify({ mutations: [row(1), row(2), row(2), row(3)], has_more: false, latest_seq: 3 })
  },
  {
    name: "has_more without progress",
    page: () => JSON.stringify({ mutations: [], has_more: true, latest_seq: 3 })
  },
  { name: "HTML instead of JSON", page: () => "<html><body>502 Bad Gateway</body></html>" },
  { name: "truncated JSON", page: () => JSON.stringify({ mutations: [row(1), row(2)], has_more: false }).slice(0, 60) },
  {
    name: "mutations that is not an array",
    page: () => "{\"mutations\":{\"0\":{}},\"has_more\":false,\"latest_seq\":3}"
  },
  { name: "a negative latest_seq", page: () => JSON.stringify({ mutations: [], has_more: false, latest_seq: -1 }) }
]

describe("malformed pulled rows", () => {
  const procs = new Processes()
  const tmp = tempDir("pulled")
  let fake: Server
  let url = ""
  /** The case the fake server answers with (-1: an empty, valid page). */
  let current = -1
  const served: Array<{ readonly case: number; readonly since: number; readonly stdoutAt: number }> = []
  let agent: Proc | undefined

  beforeAll(async () => {
    assertBuilt()
    fake = createServer((req, res) => {
      const parsed = new URL(req.url ?? "/", "http://x")
      if (parsed.pathname === "/v1/push") {
        res.writeHead(200, { "content-type": "application/json" }).end("{\"accepted_seqs\":[]}")
        return
      }
      const since = Number(parsed.searchParams.get("since_seq") ?? "0")
      served.push({ case: current, since, stdoutAt: agent?.stdout.length ?? 0 })
      const body = current < 0
        ? JSON.stringify({ mutations: [], has_more: false, latest_seq: 0 })
        : cases[current].page(since)
      res.writeHead(200, { "content-type": "application/json" }).end(body)
    })
    await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve))
    url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`
  })
  afterEach(() => procs.killAll())
  afterAll(async () => {
    fake?.closeAllConnections()
    await new Promise<void>((resolve) => fake ? fake.close(() => resolve()) : resolve())
    tmp.remove()
  })

  it("every bad row ends in pull_failed with a message or in the dead letters, never skipped", {
    timeout: 120_000
  }, async () => {
    const file = tmp.file("replica.db")
    // One agent for all cases, retrying fast; the dead-letter case comes last (it moves the cursor).
    agent = procs.cli("agent", [
      "agent",
      "--json",
      "--db",
      file,
      "--server",
      url,
      "--token",
      "t",
      "--long-poll",
      "0",
      "--poll-interval",
      "200 millis"
    ], {
      AUTOSYNC_BASE_BACKOFF: "50 millis",
      AUTOSYNC_MAX_BACKOFF: "200 millis",
      AUTOSYNC_MAX_CONSECUTIVE_FAILURES: "1000"
    })
    const a = agent
    const statuses = (from: number, to?: number) =>
      a.stdout.slice(from, to).split("\n").filter((l) => l.startsWith("{")).map((l) =>
        JSON.parse(l) as { phase: string; reason_code?: string; last_error?: string }
      )
    await waitFor("the agent's first healthy cycle", 30_000, () => {
      if (!a.running) throw new Error(a.describe())
      return statuses(0).some((s) => s.phase === "healthy") || undefined
    }, { diagnostics: () => a.describe() })

    const outcomes: Array<string> = []
    const order = [...cases.keys()].sort((x, y) =>
      Number(cases[x].deadLetter === true) - Number(cases[y].deadLetter === true)
    )
    for (const i of order) {
      const c = cases[i]
      current = i
      if (c.deadLetter) {
        // Sync goes on past the bad row: the cursor reaches 3.
        await waitFor(
          `"${c.name}" to be pulled past`,
          20_000,
          () => served.some((r) => r.case === i && r.since >= 3) || undefined,
          { diagnostics: () => a.describe() }
        )
        continue
      }
      // Two pulls of this page: the first one's failure was recorded before the second started.
      const [first, second] = await waitFor(`two pulls of "${c.name}"`, 20_000, () => {
        if (!a.running) throw new Error(a.describe())
        const mine = served.filter((r) => r.case === i)
        return mine.length >= 2 ? mine : undefined
      }, { intervalMs: 20, diagnostics: () => a.describe() })
      const failed = statuses(first.stdoutAt, second.stdoutAt).find((s) => s.phase === "pull_failed")
      expect(failed, `${c.name}: ${JSON.stringify(statuses(first.stdoutAt, second.stdoutAt))}`).toBeDefined()
      expect(failed!.reason_code, c.name).toBe("transport_failed")
      expect(failed!.last_error?.length ?? 0, c.name).toBeGreaterThan(0)
      expect(second.since, `${c.name}: the cursor moved past the bad row`).toBeLessThan(2)
      outcomes.push(`${c.name} → pull_failed/transport_failed, cursor ${second.since}: ${failed!.last_error}`)
    }
    await agent.stop()

    const [dump] = (await inspect(procs, [file])).replicas
    const dead = cases.filter((c) => c.deadLetter).map((c) => {
      const letter = dump.deadLetters.find((d) => d.seq === 2)
      expect(letter, c.name).toBeDefined()
      expect(letter!.reason.length).toBeGreaterThan(0)
      return `${c.name} → dead letter: ${letter!.reason}`
    })
    expect(dump.state?.last_pulled_seq).toBe(3)
    expect(dump.documents.map((d) => d.entity_key)).toEqual(["k1", "k3"])
    console.log(
      `[e2e pulled] ${cases.length} malformed pages, none skipped silently:\n` +
        [...outcomes, ...dead].map((o) => `  ${o.slice(0, 240)}`).join("\n")
    )
  })
})
