/**
 * End-to-end tests of the `autosync` command: every case runs the built bin as real child
 * processes (a real server on 127.0.0.1, real SQLite files, real signals) in a temporary
 * directory of its own, with no `AUTOSYNC_*` variable in the child's environment unless the test
 * sets it. The cases are independent and run concurrently; every child is killed when its test
 * ends, pass or fail. `pnpm test` builds `dist/` before vitest runs.
 */
import { hash, psql } from "@autosync/test-support"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import {
  type Exited,
  type Sandbox,
  Sandbox as SharedSandbox,
  sandbox,
  stripAnsi,
  unusedPort,
  waitFor
} from "./CliHarness.js"

// A bound on each test, for a hang: the waits inside are bounded on their own. Generous, because
// the machine may be busy (every command is a node process that takes ~0.7 s of CPU to start).
const long = 180_000

// Agents see writes made by other processes (`autosync put`) only when they poll: keep it short.
const poll = ["--poll-interval", "500 millis"] as const

// Polls `get` until the document has the expected value. On an idle machine it converges in a
// second or two; the deadline is for a machine that is busy with other work.

const getUntil = (box: Sandbox, db: string, key: string, expected: unknown) =>
  waitFor(`notes/note/${key} = ${JSON.stringify(expected)} on ${db}`, async () => {
    const result = await box.run(["get", "notes", "note", key, "--db", db])
    if (result.code === 3) return undefined
    assert.strictEqual(result.code, 0, result.stderr)
    const value: unknown = JSON.parse(result.stdout)
    return JSON.stringify(value) === JSON.stringify(expected) ? value : undefined
  }, { timeoutMs: 30_000, intervalMs: 500 })

const assertExit = (result: Exited, code: number, stderr?: RegExp) => {
  assert.strictEqual(result.code, code, `exit ${result.code ?? result.signal}\n${result.stdout}\n${result.stderr}`)
  if (stderr) assert.match(stripAnsi(result.stderr), stderr)
}

// The rows pushed and pulled, added up over an agent's status lines.
const totals = (stdout: string) => {
  let pushed = 0
  let pulled = 0
  for (const match of stdout.matchAll(/ pushed=(\d+) pulled=(\d+)/g)) {
    pushed += Number(match[1])
    pulled += Number(match[2])
  }
  return { pushed, pulled }
}

const cleanExit = (result: Exited) =>
  assert.deepStrictEqual([result.code, result.signal], [0, null], `${result.stdout}\n${result.stderr}`)

describe.concurrent("autosync", () => {
  // -------------------------------------------------------------------------------------------
  // serve, token create, agent, enroll, put, get
  // -------------------------------------------------------------------------------------------

  it("two replicas converge through a server; the agents stop on SIGINT and SIGTERM", async ({ onTestFinished }) => {
    const box = sandbox(onTestFinished)
    const a = box.path("a.db")
    const b = box.path("b.db")
    const server = await box.serve()
    const token = await box.token(["--db", box.path("server.db")], ["notes"])
    assert.match(token, /^\S{20,}$/)

    const url = server.url
    // A: the token by flag, no long-poll.
    const agentA = box.start(["agent", "--db", a, "--server", url, "--token", token, "--long-poll", "0", ...poll])
    // B: the token from AUTOSYNC_TOKEN, the default long-poll (25 s).
    const agentB = box.start(["agent", "--db", b, "--server", url, ...poll], { env: { AUTOSYNC_TOKEN: token } })
    // Enrolling and writing on both sides while the agents start: nothing waits for them to be ready.
    const [written] = await Promise.all([
      Promise.all([
        box.ok(["enroll", "notes", "--db", a]),
        box.ok(["enroll", "notes", "--db", b]),
        box.ok(["put", "notes", "note", "k1", "{\"title\":\"hi\"}", "--db", a]),
        box.ok(["put", "notes", "note", "k2", "[1,\"two\",null]", "--db", b])
      ]),
      // Started (the deadline below is for syncing, not for starting node on a busy machine).
      box.waitForOutput(agentA, /^autosync agent: /m),
      box.waitForOutput(agentB, /^autosync agent: /m)
    ])
    assert.match(written[2], /stored notes\/note\/k1/)
    assert.match(written[3], /stored notes\/note\/k2/)
    // A's write reaches B, and B's reaches A.
    await Promise.all([getUntil(box, b, "k1", { title: "hi" }), getUntil(box, a, "k2", [1, "two", null])])

    // B's watcher held a pull open for the default 25 s (the server logs a request when it answers).
    await box.waitForOutput(server.child, /wait_ms=25000/)

    const [runningA, runningB] = await Promise.all([box.status(a), box.status(b)])
    assert.isString(runningA.lease_owner)
    assert.isString(runningB.lease_owner)
    const banner = agentA.stderr().match(/autosync agent: .*a\.db ⇄ http:\/\/127\.0\.0\.1:\d+ as (replica-[0-9a-f]+) /)
    assert.strictEqual(banner?.[1], runningA.client_id, agentA.stderr())
    assert.match(agentA.stdout(), /Z healthy pushed=\d+ pulled=\d+$/m)
    assert.match(agentB.stdout(), /Z healthy pushed=\d+ pulled=\d+$/m)
    // Each side pushed its one row and pulled the other's, as the lines' counts add up to.
    await waitFor(
      "the agents' lines to count one row pushed and one pulled each",
      () =>
        [agentA, agentB].every((agent) => {
          const moved = totals(agent.stdout())
          return moved.pushed === 1 && moved.pulled === 1
        }) || undefined,
      { detail: () => agentA.stdout() + agentB.stdout() }
    )

    const [exitA, exitB] = await Promise.all([box.stop(agentA, "SIGINT"), box.stop(agentB, "SIGTERM")])
    cleanExit(exitA)
    cleanExit(exitB)
    // stdout is the status lines and nothing else (logs go to stderr).
    for (const line of [...exitA.stdout.trim().split("\n"), ...exitB.stdout.trim().split("\n")]) {
      assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z [a-z_]+ pushed=\d+ pulled=\d+( |$)/)
    }
    // A clean stop says so, once, on stderr.
    for (const exited of [exitA, exitB]) {
      assert.lengthOf(exited.stderr.match(/^autosync agent: stopped, lease released$/gm) ?? [], 1, exited.stderr)
    }
    // The server logged one line per request: method, path, status, duration; never the token.
    const serverLog = server.child.stderr()
    assert.match(serverLog, /INFO \(#\d+\): POST \/v1\/push 200 \d+ms$/m)
    assert.match(serverLog, /INFO \(#\d+\): GET \/v1\/pull\?\S+ 200 \d+ms$/m)
    assert.notInclude(serverLog, token)
    assert.notInclude(serverLog, "http.status")

    const [stoppedA, stoppedB] = await Promise.all([box.status(a), box.status(b)])
    for (const s of [stoppedA, stoppedB]) {
      assert.strictEqual(s.lease_owner, null)
      assert.strictEqual(s.lease_until, null)
      assert.strictEqual(s.pending, 0)
      assert.deepStrictEqual(s.enrolled, ["notes"])
    }
    assert.strictEqual(stoppedA.client_id, runningA.client_id)
    assert.notStrictEqual(stoppedA.client_id, stoppedB.client_id)

    cleanExit(await box.stop(server.child, "SIGTERM"))
  }, long)

  // -------------------------------------------------------------------------------------------
  // status
  // -------------------------------------------------------------------------------------------

  it("status reports a replica's state from its file, before and after a sync", async ({ onTestFinished }) => {
    const box = sandbox(onTestFinished)
    const db = box.path("replica.db")
    // A read on a file that is not there is refused (a mistyped --db creates nothing); init creates it.
    const missing = await box.run(["status", "--db", db])
    assert.strictEqual(missing.code, 3)
    assert.include(missing.stderr, `no replica at ${db}`)
    assert.isFalse(Fs.existsSync(db))
    await box.ok(["init", "--db", db])
    const [server, fresh] = await Promise.all([box.serve(), box.status(db)])

    assert.match(fresh.client_id, /^replica-[0-9a-f]+$/)
    assert.strictEqual(fresh.file, db)
    assert.strictEqual(fresh.phase, "idle")
    assert.strictEqual(fresh.pending, 0)
    assert.deepStrictEqual(fresh.enrolled, [])
    assert.strictEqual(fresh.last_pulled_seq, 0)
    assert.strictEqual(fresh.lease_owner, null)

    // Written before the project is enrolled: pending, but not pushable.
    const [token] = await Promise.all([
      box.token(["--db", box.path("server.db")], ["notes"]),
      box.ok(["put", "notes", "note", "k1", "{\"n\":1}", "--db", db]),
      box.ok(["put", "notes", "note", "k2", "{\"n\":2}", "--db", db])
    ])
    const unenrolled = await box.status(db)
    assert.strictEqual(unenrolled.client_id, fresh.client_id)
    assert.strictEqual(unenrolled.pending, 2)
    assert.strictEqual(unenrolled.non_enrolled_pending, 2)
    assert.strictEqual(unenrolled.last_enqueued_seq, 2)
    assert.strictEqual(unenrolled.journal_rows, 2)
    assert.deepStrictEqual(unenrolled.enrolled, [])

    await box.ok(["enroll", "notes", "--db", db])
    const enrolled = await box.status(db)
    assert.strictEqual(enrolled.client_id, fresh.client_id)
    assert.strictEqual(enrolled.pending, 2)
    assert.strictEqual(enrolled.non_enrolled_pending, 0)
    assert.deepStrictEqual(enrolled.enrolled, ["notes"])
    assert.strictEqual(enrolled.phase, "idle")
    assert.strictEqual(enrolled.last_acked_seq, 0)

    const agent = box.start(["agent", "--db", db, "--server", server.url, "--token", token, ...poll])
    // Its first cycle pushes both rows and pulls them back; then the file says so.
    await box.waitForOutput(agent, /Z healthy pushed=\d+ pulled=\d+$/m)
    const synced = await waitFor("the agent to push and pull", async () => {
      const s = await box.status(db)
      return s.pending === 0 && s.last_pulled_seq >= 2 ? s : undefined
    }, { timeoutMs: 30_000, intervalMs: 500, detail: () => agent.stdout() + agent.stderr() })
    assert.strictEqual(synced.client_id, fresh.client_id)
    assert.strictEqual(synced.phase, "healthy")
    assert.strictEqual(synced.last_acked_seq, 2)
    // The server's log holds just these two mutations, pulled back as seqs 1 and 2.
    assert.strictEqual(synced.last_pulled_seq, 2)
    assert.strictEqual(synced.consecutive_failures, 0)
    // Acked and pulled: the journal keeps nothing of it.
    assert.strictEqual(synced.journal_rows, 0)
    assert.isAbove(synced.file_bytes ?? 0, 0)
    assert.strictEqual(synced.reason_code, null)
    assert.isString(synced.lease_owner)

    // A second agent on the same file says who holds the lease, and waits.
    const second = box.start(["agent", "--db", db, "--server", server.url, "--token", token, ...poll])
    const holder = await box.waitForOutput(second, /is being synced by (\S+) \(lease until \S+\)/)
    assert.strictEqual(holder[1], synced.lease_owner)
    const secondExit = await box.stop(second, "SIGTERM")
    cleanExit(secondExit)
    assert.match(secondExit.stderr, /^autosync agent: stopped$/m) // it never held the lease

    cleanExit(await box.stop(agent, "SIGINT"))
    const [after, text] = await Promise.all([box.status(db), box.ok(["status", "--db", db])])
    assert.strictEqual(after.client_id, fresh.client_id)
    assert.strictEqual(after.pending, 0)
    assert.strictEqual(after.lease_owner, null)
    assert.strictEqual(after.phase, "healthy")
    // The text form shows the same facts.
    assert.include(text, fresh.client_id)
    assert.match(text, /^pending rows\s+0$/m)
    assert.match(text, /^enrolled\s+notes$/m)
    assert.match(text, /^last pulled seq\s+2$/m)
    assert.match(text, /^lease holder\s+\(free\)$/m)
    assert.match(text, /^journal rows\s+0 \(/m)
    assert.match(text, /^file size\s+[\d.]+ KiB$/m)
  }, long)

  // -------------------------------------------------------------------------------------------
  // token list and revoke
  // -------------------------------------------------------------------------------------------

  it(
    "token list shows ids, admin flag and last use, never tokens; a revoked token's requests get 401",
    async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const serverDb = box.path("server.db")
      const store = ["--db", serverDb]
      const server = await box.serve()
      const kept = await box.token(store, ["notes"])
      const revoked = await box.token(store, ["notes", "other"])
      const db = box.path("a.db")
      await box.ok(["enroll", "notes", "--db", db])
      await box.ok(["put", "notes", "note", "k1", "1", "--db", db])
      const agent = box.start([
        "agent",
        "--db",
        db,
        "--server",
        server.url,
        "--token",
        revoked,
        "--long-poll",
        "0",
        ...poll
      ])
      await box.waitForOutput(agent, /Z healthy pushed=\d+ pulled=\d+$/m)

      const admin = (await box.ok(["token", "create", ...store, "--admin"])).trim().split("\n").pop()!

      interface Listed {
        readonly id: string
        readonly projects: ReadonlyArray<string>
        readonly admin: boolean
        readonly created_at: string
        readonly last_used_at: string | null
      }
      const listed = JSON.parse(await box.ok(["token", "list", ...store, "--json"])) as ReadonlyArray<Listed>
      assert.lengthOf(listed, 3)
      const [keptRow, revokedRow, adminRow] = listed
      assert.deepStrictEqual([keptRow.admin, adminRow.admin], [false, true])
      assert.match(keptRow.id, /^tok_[0-9a-f]{12}$/)
      assert.deepStrictEqual(revokedRow.projects, ["notes", "other"])
      assert.isNull(keptRow.last_used_at) // never presented
      assert.isString(revokedRow.last_used_at) // the agent's requests
      const text = await box.ok(["token", "list", ...store])
      assert.match(text, /^ID\s+PROJECTS\s+ADMIN\s+CREATED\s+LAST USED$/m)
      assert.match(text, new RegExp(`^${keptRow.id}\\s+notes\\s+no\\s+\\S+Z\\s+never$`, "m"))
      for (const output of [text, JSON.stringify(listed)]) {
        assert.notInclude(output, admin)
        assert.notInclude(output, kept)
        assert.notInclude(output, revoked)
      }

      const revokeResult = await box.run(["token", "revoke", revokedRow.id, ...store])
      assertExit(revokeResult, 0)
      assert.match(revokeResult.stdout, new RegExp(`^revoked ${revokedRow.id} \\(notes, other\\)`))
      // The server remembers a verified token for 10 s: the agent is refused once that has passed.
      await box.waitForOutput(agent, /Z (push|pull)_failed pushed=0 pulled=0 reason=auth_required /, 60_000)
      const after = JSON.parse(await box.ok(["token", "list", ...store, "--json"])) as ReadonlyArray<Listed>
      assert.deepStrictEqual(after.map((t) => t.id), [keptRow.id, adminRow.id])

      const again = await box.run(["token", "revoke", revokedRow.id, ...store])
      assertExit(
        again,
        3,
        new RegExp(
          `^autosync: no token "${revokedRow.id}" in .*server\\.db \\(\`autosync token list\` shows the ids\\)\\n$`
        )
      )
      const missing = await box.run(["token", "list", "--db", box.path("nothing.db")])
      assertExit(missing, 3, /no server database at .*nothing\.db/)
      assert.isFalse(Fs.existsSync(box.path("nothing.db")))
      cleanExit(await box.stop(agent, "SIGTERM"))
    },
    long
  )

  it(
    "clients: an admin token reads who is connected (table and --json); another token is refused",
    async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const store = ["--db", box.path("server.db")]
      const server = await box.serve()
      const writer = await box.token(store, ["notes"])
      const admin = (await box.ok(["token", "create", ...store, "--admin"])).trim().split("\n").pop()!
      const db = box.path("a.db")
      await box.ok(["enroll", "notes", "--db", db])
      await box.ok(["put", "notes", "note", "k1", "1", "--db", db])
      const agent = box.start([
        "agent",
        "--db",
        db,
        "--server",
        server.url,
        "--token",
        writer,
        "--long-poll",
        "0",
        ...poll
      ])
      await box.waitForOutput(agent, /Z healthy pushed=\d+ pulled=\d+$/m)

      const listed = JSON.parse(await box.ok(["clients", "--server", server.url, "--token", admin, "--json"])) as {
        readonly clients: ReadonlyArray<
          {
            readonly client_id: string
            readonly token_id: string
            readonly lag: number | null
            readonly pushed: number
          }
        >
        readonly latest_seq: number
      }
      assert.lengthOf(listed.clients, 1)
      assert.match(listed.clients[0].client_id, /^replica-/)
      assert.strictEqual(listed.clients[0].pushed, 1)
      assert.strictEqual(listed.latest_seq, 1)
      assert.match(listed.clients[0].token_id, /^tok_[0-9a-f]{12}$/)
      assert.isAtLeast(listed.clients[0].lag ?? -1, 0)
      const text = await box.ok(["clients", "--server", server.url, "--token", admin])
      assert.match(text, /^CLIENT\s+TOKEN\s+CURSOR\s+LAG\s+LAST PUSH\s+LAST PULL\s+PUSHED\s+PULLED$/m)
      assert.include(text, listed.clients[0].client_id)
      assertExit(
        await box.run(["clients", "--server", server.url, "--token", writer]),
        1,
        /^autosync: .* refused the token: token tok_[0-9a-f]{12} is not an admin token/
      )
    },
    long
  )

  // -------------------------------------------------------------------------------------------
  // PostgreSQL
  // -------------------------------------------------------------------------------------------

  it("serve and token create on PostgreSQL: a put on one replica reaches another", async ({ onTestFinished, skip }) => {
    const base = process.env.AUTOSYNC_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test"
    const reachable = await psql(base, "select 1").then(() => true, (error: unknown) => {
      const message = `PostgreSQL at ${redact(base)} is not reachable (${String(error)})`
      if (process.env.CI === "true") throw new Error(`${message}; CI needs it`)
      console.warn(`SKIPPED the autosync PostgreSQL test: ${message}. Set AUTOSYNC_TEST_PG_URL to run it.`)
      return false
    })
    if (!reachable) return skip()

    // A schema of our own, as the connection's search_path: the server migrates its tables there.
    const schema = `autosync_cli_${randomBytes(6).toString("hex")}`
    await psql(base, `create schema ${schema}`)
    onTestFinished(() => psql(base, `drop schema if exists ${schema} cascade`).then(() => undefined))
    const box = sandbox(onTestFinished) // registered last, so its children are killed first
    const url = `${base}${base.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}`

    // token create reads the URL from AUTOSYNC_DATABASE_URL; serve from --database-url.
    const created = await box.ok(["token", "create", "--project", "notes"], { env: { AUTOSYNC_DATABASE_URL: url } })
    const token = created.trim().split("\n").pop()!
    const listed = JSON.parse(
      await box.ok(["token", "list", "--json"], { env: { AUTOSYNC_DATABASE_URL: url } })
    ) as ReadonlyArray<{ readonly id: string; readonly projects: ReadonlyArray<string> }>
    assert.deepStrictEqual(listed.map((t) => t.projects), [["notes"]])
    assert.match(listed[0].id, /^tok_[0-9a-f]{12}$/)
    const server = await box.serve(["--database-url", url])
    assert.include(server.child.stdout(), "(PostgreSQL)")

    const a = box.path("a.db")
    const b = box.path("b.db")
    const agents = [a, b].map((db) =>
      box.start(["agent", "--db", db, "--server", server.url, "--token", token, ...poll])
    )
    await Promise.all([
      box.ok(["enroll", "notes", "--db", a]),
      box.ok(["enroll", "notes", "--db", b]),
      box.ok(["put", "notes", "note", "pg", "{\"on\":\"postgres\"}", "--db", a]),
      ...agents.map((agent) => box.waitForOutput(agent, /^autosync agent: /m))
    ])
    await getUntil(box, b, "pg", { on: "postgres" })

    // The mutation is in our schema's log.
    assert.strictEqual((await psql(base, `select count(*) from ${schema}.autosync_log`)).trim(), "1")
    cleanExit(await box.stop(server.child, "SIGINT"))
  }, long)

  // -------------------------------------------------------------------------------------------
  // demo
  // -------------------------------------------------------------------------------------------

  describe("demo", () => {
    it("300 rows in batches of 50: tables identical, its directory removed", async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const tmp = box.path("tmp")
      Fs.mkdirSync(tmp)
      const result = await box.run(["demo", "--rows", "300", "--batch-size", "50"], {
        env: { TMPDIR: tmp },
        timeoutMs: 90_000
      })
      assertExit(result, 0)
      assert.match(result.stdout, /^tables identical {3}yes \(300 documents on A, 300 on B\)$/m)
      assert.match(result.stdout, /in transactions of 50/)
      const dir = result.stdout.match(/^replicas (\S+)\/a\.db /m)?.[1]
      assert.isString(dir, result.stdout)
      assert.isTrue(dir!.startsWith(tmp), `${dir} is not under TMPDIR ${tmp}`)
      assert.isFalse(Fs.existsSync(dir!), `${dir} is still there`)
      assert.deepStrictEqual(Fs.readdirSync(tmp), [])
    }, long)

    it("--json prints one JSON object with identical: true and leaves nothing behind", async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const tmp = box.path("tmp")
      Fs.mkdirSync(tmp)
      const result = await box.run(["demo", "--rows", "300", "--json"], { env: { TMPDIR: tmp }, timeoutMs: 90_000 })
      assertExit(result, 0)
      const lines = result.stdout.trim().split("\n")
      assert.lengthOf(lines, 1, result.stdout)
      const figures = JSON.parse(lines[0]) as Record<string, unknown>
      assert.strictEqual(figures.identical, true)
      assert.strictEqual(figures.rows, 300)
      for (const key of ["write_ms", "converge_ms", "throughput_rows_per_s", "propagation_p99_ms"]) {
        assert.isNumber(figures[key], key)
      }
      assert.deepStrictEqual(Fs.readdirSync(tmp), [])
    }, long)
  })

  // -------------------------------------------------------------------------------------------
  // bad input: a clear message, a non-zero exit code, nothing changed
  // -------------------------------------------------------------------------------------------

  describe("bad input", () => {
    // One server for the cases that need one.
    let shared: SharedSandbox
    let serverUrl: string
    beforeAll(async () => {
      shared = new SharedSandbox()
      serverUrl = (await shared.serve()).url
    }, long)
    afterAll(() => shared?.cleanup())

    it("exit code 2 for a bad flag or argument, and no file is created", async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const db = box.path("x.db")
      const [port, scheme, notJson, noProject, both, noServer, noToken, unknown, inflight, rate] = await Promise.all([
        box.run(["serve", "--db", db, "--port", "99999"]),
        box.run(["agent", "--db", db, "--server", "ftp://x", "--token", "t"]),
        box.run(["put", "notes", "note", "k", "notjson", "--db", db]),
        box.run(["token", "create", "--db", db]),
        box.run(["serve", "--db", db, "--database-url", "postgres://x"]),
        box.run(["agent", "--db", db, "--token", "t"]),
        box.run(["agent", "--db", db, "--server", "http://127.0.0.1:1"]),
        box.run(["frobnicate"]),
        box.run(["serve", "--db", db, "--max-inflight", "0"]),
        box.run(["serve", "--db", db, "--rate-limit", "20/min"])
      ])
      assertExit(port, 2, /--port must be between 0 and 65535, got 99999/)
      assertExit(scheme, 2, /--server must be an http:\/\/ or https:\/\/ URL, got "ftp:\/\/x"/)
      assertExit(notJson, 2, /must be JSON.*"notjson"/)
      assertExit(noProject, 2, /needs at least one --project/)
      assertExit(both, 2, /either --db or --database-url/)
      assertExit(noServer, 2, /--server/)
      assertExit(noToken, 2, /--token/)
      assertExit(unknown, 2, /Invalid subcommand.*'serve'/)
      assertExit(inflight, 2, /--max-inflight must be a positive integer, got 0/)
      assertExit(rate, 2, /--rate-limit must be a positive rate per second such as 20\/s, got "20\/min"/)
      assert.isFalse(Fs.existsSync(db), "a refused command created the file")
    }, long)

    it("--help after options prints that command's help, exit 0", async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["status", "--db", "./a.db", "--help"], "$ autosync status"],
        [["agent", "--server", "http://x", "--help"], "$ autosync agent"],
        [["token", "create", "--db", "./s.db", "--project", "p", "--help"], "$ autosync token create"],
        [["put", "notes", "note", "k", "--db", "./a.db", "-h"], "$ autosync put"],
        [["serve", "--port", "1", "--help"], "$ autosync serve"]
      ]
      const results = await Promise.all(cases.map(([args]) => box.run(args)))
      cases.forEach(([args, usage], i) => {
        assertExit(results[i], 0)
        assert.include(results[i].stdout, usage, `autosync ${args.join(" ")}`)
        assert.notInclude(results[i].stdout, "\u001b[", `autosync ${args.join(" ")}`)
      })
      assert.deepStrictEqual(Fs.readdirSync(box.dir), [], "--help created a file")
    }, long)

    it("bad values in one line each, exit code 2, nothing created", async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const db = box.path("x.db")
      const server = box.path("server.db")
      const [emptyProject, emptyEntity, emptyToken, tokenProject, servePort] = await Promise.all([
        box.run(["enroll", "", "--db", db]),
        box.run(["put", "notes", "", "k", "1", "--db", db]),
        box.run(["agent", "--db", db, "--server", "http://127.0.0.1:1", "--token", ""]),
        box.run(["token", "create", "--db", server, "--project", ""]),
        box.run(["serve", "--db", server, "--port", "-1"])
      ])
      assertExit(emptyProject, 2, /project must not be empty/)
      assertExit(emptyEntity, 2, /entity must not be empty/)
      assertExit(emptyToken, 2, /--token must not be empty/)
      // (@effect/cli drops an empty value of a repeated flag: either message is the one line it deserves.)
      assertExit(
        tokenProject,
        2,
        /^autosync: (project must not be empty|token create needs at least one --project \(or --admin\))\n$/
      )
      assertExit(servePort, 2, /--port must be between 0 and 65535, got -1/)
      for (const result of [emptyProject, emptyEntity, emptyToken, tokenProject, servePort]) {
        assert.notMatch(result.stderr, /└─|\n\s+at \S/, "a Schema tree or a stack trace")
      }
      assert.deepStrictEqual(Fs.readdirSync(box.dir), [], "a refused command created a file")
    }, long)

    it(
      "serve and token create refuse a replica, a text file, a missing directory: named, unchanged",
      async ({ onTestFinished }) => {
        const box = sandbox(onTestFinished)
        const replica = box.path("replica.db")
        await box.ok(["init", "--db", replica])
        await box.ok(["enroll", "notes", "--db", replica])
        const text = box.path("notes.txt")
        Fs.writeFileSync(text, "not a database\n".repeat(100))
        const missing = box.path("no-such-dir/server.db")
        // (Beside a WAL database SQLite may add the -wal and -shm any reader needs: not a change.)
        const files = () => Fs.readdirSync(box.dir).filter((f) => !/-(wal|shm)$/.test(f)).sort()
        const before = { replica: hash(replica), text: hash(text), files: files() }
        const port = await unusedPort()
        const cases = [
          [
            ["serve", "--db", replica, "--port", String(port)],
            /"[^"]*replica\.db" is an autosync replica .*sync_state/
          ],
          [["token", "create", "--db", replica, "--project", "p"], /"[^"]*replica\.db" is an autosync replica/],
          [["token", "list", "--db", replica], /"[^"]*replica\.db" is an autosync replica/],
          [["serve", "--db", text, "--port", String(port)], /"[^"]*notes\.txt" is not a SQLite database/],
          [["token", "create", "--db", text, "--project", "p"], /"[^"]*notes\.txt" is not a SQLite database/],
          [
            ["serve", "--db", missing, "--port", String(port)],
            /cannot create "[^"]*server\.db": the directory .*no-such-dir does not exist/
          ],
          [["token", "create", "--db", missing, "--project", "p"], /the directory .*no-such-dir does not exist/]
        ] as const
        const results = await Promise.all(cases.map(([args]) => box.run(args)))
        cases.forEach(([args, message], i) => {
          assertExit(results[i], 1, message)
          assert.match(
            results[i].stderr,
            /^autosync: [^\n]+\n$/,
            `one line, no stack trace: autosync ${args.join(" ")}`
          )
        })
        assert.deepStrictEqual(
          { replica: hash(replica), text: hash(text), files: files() },
          before
        )
      },
      long
    )

    it("serve on a busy port names the port, suggests --port and leaves no file", async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const busy = new URL(serverUrl).port
      const db = box.path("server.db")
      const result = await box.run(["serve", "--db", db, "--port", busy])
      assertExit(result, 1, new RegExp(`^autosync: port ${busy} on 127\\.0\\.0\\.1 is already in use.*--port`))
      assert.deepStrictEqual(Fs.readdirSync(box.dir), [], "the failed serve left a file")
    }, long)

    it("put to a project that is not enrolled stores it and says it will not be pushed", async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const db = box.path("a.db")
      const result = await box.run(["put", "drafts", "note", "k", "{\"n\":1}", "--db", db])
      assertExit(result, 0, /not enrolled.*until `autosync enroll drafts`/)
      assert.match(result.stdout, /^stored drafts\/note\/k/)
      assert.strictEqual(await box.ok(["get", "drafts", "note", "k", "--db", db]), "{\"n\":1}\n")
      await box.ok(["enroll", "drafts", "--db", db])
      const enrolled = await box.run(["put", "drafts", "note", "k2", "2", "--db", db])
      assertExit(enrolled, 0)
      assert.notInclude(enrolled.stderr, "not enrolled")
    }, long)

    it("exit code 3 for a document that does not exist", async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const db = box.path("x.db")
      await box.ok(["put", "notes", "note", "there", "true", "--db", db])
      const [missing, there] = await Promise.all([
        box.run(["get", "notes", "note", "nope", "--db", db]),
        box.ok(["get", "notes", "note", "there", "--db", db])
      ])
      assertExit(missing, 3, /^autosync: no document notes\/note\/nope\n$/)
      assert.strictEqual(missing.stdout, "")
      assert.strictEqual(there, "true\n")
    }, long)

    it("--help on the root and on every subcommand exits 0 and names the flags", async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const agentFlags = ["--db", "--server", "--token", "--json", "--debounce", "--poll-interval", "--long-poll"]
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, ReadonlyArray<string>]> = [
        [[], [
          "serve",
          "token",
          "clients",
          "agent",
          "status",
          "init",
          "enroll",
          "unenroll",
          "put",
          "get",
          "list",
          "demo"
        ]],
        [["token", "list"], ["--db", "--database-url", "--json", "last used"]],
        [["token", "revoke"], ["--db", "--database-url", "id", "Exit code 3"]],
        [["serve"], [
          "--db",
          "--database-url",
          "--port",
          "--host",
          "--body-limit",
          "--max-inflight",
          "--rate-limit",
          "AUTOSYNC_PORT"
        ]],
        [["token"], ["create", "list", "revoke"]],
        [["token", "create"], ["--project", "--admin", "--db", "--database-url"]],
        [["clients"], ["--server", "--token", "--json", "admin token", "AUTOSYNC_TOKEN"]],
        [["agent"], [...agentFlags, "AUTOSYNC_TOKEN", "AUTOSYNC_SERVER_URL"]],
        [["status"], ["--db", "--json"]],
        [["init"], ["--db"]],
        [["enroll"], ["--db", "project"]],
        [["unenroll"], ["--db", "project"]],
        [["put"], ["--db", "project", "entity", "key", "json"]],
        [["get"], ["--db", "project", "entity", "key", "exit code 3"]],
        [["list"], ["--db", "--json", "project", "entity"]],
        [["demo"], ["--rows", "--batch-size", "--json"]]
      ]
      const results = await Promise.all(cases.map(([command]) => box.run([...command, "--help"])))
      cases.forEach(([command, mentions], i) => {
        const result = results[i]
        assertExit(result, 0)
        // Piped, so no colour codes; the usage line names the whole command.
        assert.notInclude(result.stdout, "\u001b[", `autosync ${command.join(" ")} --help`)
        const help = result.stdout
        assert.include(help, "USAGE", `autosync ${command.join(" ")} --help`)
        assert.include(help, `$ ${["autosync", ...command].join(" ")}`, `autosync ${command.join(" ")} --help`)
        for (const mention of mentions) assert.include(help, mention, `autosync ${command.join(" ")} --help`)
      })
      assert.isFalse(Fs.existsSync(box.path("autosync.db")), "--help opened the default database")
    }, long)

    it("an agent without a server: transport_failed, backoff, exit 0 on SIGTERM", async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const db = box.path("a.db")
      const url = `http://127.0.0.1:${await unusedPort()}`
      const agent = box.start(["agent", "--db", db, "--server", url, "--token", "t"])
      await box.waitForOutput(
        agent,
        /Z (push|pull)_failed pushed=0 pulled=0 reason=transport_failed failures=1 retry_at=\S+ error=".+"$/m
      )
      cleanExit(await box.stop(agent, "SIGTERM"))
      const s = await box.status(db)
      assert.strictEqual(s.phase, "backoff")
      assert.strictEqual(s.reason_code, "transport_failed")
      assert.isAtLeast(s.consecutive_failures, 1)
      assert.isString(s.backoff_until)
      assert.strictEqual(s.lease_owner, null)
    }, long)

    it("an agent with a wrong token: auth_required, nothing pushed, JSON lines only", async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const db = box.path("a.db")
      await box.ok(["enroll", "notes", "--db", db])
      await box.ok(["put", "notes", "note", "k", "{\"kept\":true}", "--db", db])
      const agent = box.start(["agent", "--db", db, "--server", serverUrl, "--token", "as_not-a-token", "--json"])
      await box.waitForOutput(agent, /"reason_code":"auth_required"/)
      const exited = await box.stop(agent, "SIGTERM")
      cleanExit(exited)
      // Every stdout line is a JSON status (logs go to stderr).
      const statuses = exited.stdout.trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>)
      for (const status of statuses) {
        assert.match(String(status.at), /^\d{4}-\d\d-\d\dT[\d:.]+Z$/)
        assert.deepStrictEqual([status.pushed, status.pulled], [0, 0])
      }
      const failed = statuses.find((s) => s.reason_code === "auth_required")
      assert.oneOf(failed?.phase, ["push_failed", "pull_failed"])
      assert.isAtLeast(Number(failed?.consecutive_failures), 1)
      assert.notInclude(exited.stderr, "as_not-a-token")
      const s = await box.status(db)
      assert.strictEqual(s.reason_code, "auth_required")
      assert.strictEqual(s.pending, 1)
      assert.strictEqual(s.last_acked_seq, 0)
      assert.strictEqual(await box.ok(["get", "notes", "note", "k", "--db", db]), "{\"kept\":true}\n")
    }, long)

    it("a --db that is not SQLite: exit code 1, the file named and left as it was", async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const db = box.path("garbage.db")
      const garbage = "this is not a database, it is a text file\n".repeat(200)
      Fs.writeFileSync(db, garbage)
      const [status, agent] = await Promise.all([
        box.run(["status", "--db", db]),
        box.run(["agent", "--db", db, "--server", serverUrl, "--token", "t"])
      ])
      for (const result of [status, agent]) {
        assertExit(result, 1, /is not a SQLite database/)
        assert.include(result.stderr, `"${db}"`)
      }
      assert.strictEqual(Fs.readFileSync(db, "utf8"), garbage)
    }, long)
  })
})

const redact = (url: string) => url.replace(/\/\/([^:@/]+):[^@/]*@/, "//$1:***@")
