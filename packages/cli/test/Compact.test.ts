/**
 * `autosync compact`, `serve --compact-threshold` and `status` on a server's database, as real
 * child processes: the report printed, the log compacted (pulls see the newest row of each key),
 * a retry after compaction still gets its seqs, a replica's file refused unchanged, a bad
 * threshold refused in one line. The PostgreSQL case skips visibly without PostgreSQL (fails
 * under CI=true).
 */
import { psql } from "@autosync/test-support"
import { createHash, randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import { assert, describe, it } from "vitest"
import { type Sandbox, sandbox, waitFor } from "./CliHarness.js"

const long = 180_000

const push = async (url: string, token: string, body: unknown) => {
  const response = await fetch(`${url}/v1/push`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body)
  })
  return { status: response.status, body: await response.json() as Record<string, unknown> }
}

const pull = async (url: string, token: string, since = 0) => {
  const response = await fetch(`${url}/v1/pull?since_seq=${since}&limit=1000`, {
    headers: { authorization: `Bearer ${token}` }
  })
  return await response.json() as {
    readonly mutations: ReadonlyArray<{ readonly seq: number; readonly entity_key: string; readonly payload: unknown }>
    readonly latest_seq: number
  }
}

// 30 writes by one client to 3 keys: 27 superseded rows.
const writes = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => ({
    client_seq: from + i,
    project: "notes",
    entity: "note",
    entity_key: `k${(from + i) % 3}`,
    op: "upsert",
    payload: { n: from + i }
  }))

/** Writes through a server on `store`, compacts with `autosync compact`, checks the log. */
const compactWhileServing = async (box: Sandbox, store: ReadonlyArray<string>) => {
  const token = await box.token(store, ["notes"])
  const server = await box.serve([...store, "--compact-threshold", "0"])
  const first = await push(server.url, token, { client_id: "c1", mutations: writes(1, 30) })
  assert.strictEqual(first.status, 200)
  const report = JSON.parse(await box.ok(["compact", ...store, "--json", "--batch-size", "5"]))
  assert.deepInclude(report, { removed: 27, tombstones_dropped: 0, identities_kept: 27 })
  const text = await box.ok(["compact", ...store])
  assert.match(text, /compaction removed 0 superseded rows in \d+ ms/)
  // The server answers from the compacted log: one row per key, the newest.
  const page = await pull(server.url, token)
  assert.deepStrictEqual(page.mutations.map((m) => [m.seq, m.entity_key]), [[28, "k1"], [29, "k2"], [30, "k0"]])
  assert.strictEqual(page.latest_seq, 30)
  // A retry of the whole push after compaction: the original seqs, nothing stored.
  const retry = await push(server.url, token, { client_id: "c1", mutations: writes(1, 30) })
  assert.deepStrictEqual(retry.body.accepted_seqs, first.body.accepted_seqs)
  const stats = JSON.parse(await box.ok(["status", ...store, "--json"]))
  assert.deepInclude(stats, { rows: 3, live_keys: 3, superseded: 0, latest_seq: 30, identities: 27 })
  assert.strictEqual(stats.last_compaction.removed, 0)
  await box.stop(server.child, "SIGINT")
}

describe("autosync compact", () => {
  it("on a SQLite file: prints the report; the server then answers from the compacted log", async ({
    onTestFinished
  }) => {
    const box = sandbox(onTestFinished)
    await compactWhileServing(box, ["--db", box.path("server.db")])
  }, long)

  it("refuses a replica's file unchanged, and a missing file; a bad --compact-threshold in one line", async ({
    onTestFinished
  }) => {
    const box = sandbox(onTestFinished)
    const replica = box.path("replica.db")
    await box.ok(["init", "--db", replica])
    const before = createHash("sha256").update(Fs.readFileSync(replica)).digest("hex")
    const refused = await box.run(["compact", "--db", replica])
    assert.strictEqual(refused.code, 1)
    assert.match(refused.stderr, /is an autosync replica .* not a server database/)
    assert.strictEqual(createHash("sha256").update(Fs.readFileSync(replica)).digest("hex"), before)
    const missing = await box.run(["compact", "--db", box.path("none.db")])
    assert.strictEqual(missing.code, 3)
    assert.isFalse(Fs.existsSync(box.path("none.db")))
    for (const bad of ["-1", "many"]) {
      const result = await box.run(["serve", "--db", box.path("s.db"), "--compact-threshold", bad, "--port", "0"])
      assert.strictEqual(result.code, 2, result.stderr)
      assert.match(result.stderr.trim(), /compact-threshold/)
      assert.strictEqual(result.stderr.trim().split("\n").length, 1, result.stderr)
    }
    assert.isFalse(Fs.existsSync(box.path("s.db")))
  }, long)

  it("serve --compact-threshold compacts by itself once enough rows are superseded", async ({ onTestFinished }) => {
    const box = sandbox(onTestFinished)
    const store = ["--db", box.path("server.db")]
    const token = await box.token(store, ["notes"])
    const server = await box.serve([...store, "--compact-threshold", "10", "--compact-interval", "1 second"])
    await push(server.url, token, { client_id: "c1", mutations: writes(1, 30) })
    await waitFor(
      "the server compacted its log",
      async () => (await pull(server.url, token)).mutations.length === 3 ? true : undefined,
      { timeoutMs: 120_000 }
    )
    await box.waitForOutput(server.child, /compaction removed 27 superseded rows in \d+ ms/)
    await box.stop(server.child, "SIGINT")
    const stats = JSON.parse(await box.ok(["status", ...store, "--json"]))
    assert.strictEqual(stats.last_compaction.removed, 27)
  }, long)

  it("on PostgreSQL: the same", async ({ onTestFinished, skip }) => {
    const base = process.env.AUTOSYNC_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test"
    const reachable = await psql(base, "select 1").then(() => true, (error: unknown) => {
      const message = `PostgreSQL is not reachable (${String(error)})`
      if (process.env.CI === "true") throw new Error(`${message}; CI needs it`)
      console.warn(`SKIPPED the autosync compact PostgreSQL test: ${message}. Set AUTOSYNC_TEST_PG_URL to run it.`)
      return false
    })
    if (!reachable) return skip()
    const schema = `autosync_cli_${randomBytes(6).toString("hex")}`
    await psql(base, `create schema ${schema}`)
    onTestFinished(() => psql(base, `drop schema if exists ${schema} cascade`).then(() => undefined))
    const box = sandbox(onTestFinished)
    const url = `${base}${base.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}`
    await compactWhileServing(box, ["--database-url", url])
  }, long)
})
