/**
 * Log compaction with real server processes:
 * - two `autosync serve --database-url` processes on one PostgreSQL database, one compacting
 *   often (a low threshold) while both take pushes from several writers and pulls from several
 *   pullers, each following its cursor in small pages: every puller ends with every key's newest
 *   version, as the writers' accepted seqs say it is;
 * - a compaction of a big log (SQLite file; `autosync compact` in small batches, the code the
 *   server's background compaction runs) SIGKILLed half way: after a server restart the log
 *   holds every key's newest version, every push retried gets its original seqs and stores
 *   nothing, and pullers (one that followed the log before the kill, one that joins after)
 *   converge.
 * Writers and pullers speak the HTTP protocol directly (the replicas' side is tested elsewhere);
 * the oracle is what the writers were told: per key, the write with the highest accepted seq.
 */
import { psql } from "@autosync/test-support"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import { afterEach, assert, beforeAll, describe, it } from "vitest"
import { assertBuilt, createToken, Processes, startServer, tempDir, waitFor } from "./support/processes.js"

interface Entry {
  readonly client_seq: number
  readonly project: string
  readonly entity: string
  readonly entity_key: string
  readonly op: string
  readonly payload: unknown
}
interface Pulled {
  readonly seq: number
  readonly entity_key: string
  readonly op: string
  readonly payload: unknown
}

const http = async (url: string, token: string, init: RequestInit = {}) => {
  const response = await fetch(url, {
    ...init,
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` }
  })
  const body = await response.json() as Record<string, unknown>
  if (response.status !== 200) {
    throw new Error(`${init.method ?? "GET"} ${url}: ${response.status} ${JSON.stringify(body)}`)
  }
  return body
}

const push = async (server: string, token: string, clientId: string, mutations: ReadonlyArray<Entry>) =>
  (await http(`${server}/v1/push`, token, {
    method: "POST",
    body: JSON.stringify({ client_id: clientId, mutations })
  })).accepted_seqs as ReadonlyArray<number>

/** A puller: its cursor and, per key, the newest version it saw. */
class Puller {
  cursor = 0
  readonly state = new Map<string, Pulled>()
  constructor(readonly token: string) {}
  /** One page; true when it caught up with the log's latest seq. */
  async page(server: string, limit: number): Promise<boolean> {
    const page = await http(`${server}/v1/pull?since_seq=${this.cursor}&limit=${limit}`, this.token) as {
      readonly mutations: ReadonlyArray<Pulled>
      readonly has_more: boolean
      readonly latest_seq: number
    }
    for (const m of page.mutations) {
      const known = this.state.get(m.entity_key)
      if (known === undefined || known.seq < m.seq) this.state.set(m.entity_key, m)
    }
    this.cursor = page.has_more ? page.mutations.at(-1)!.seq : Math.max(this.cursor, page.latest_seq)
    return !page.has_more
  }
  async catchUp(server: string, limit: number) {
    while (!(await this.page(server, limit))) {
      // next page
    }
  }
}

/** Per key, the write with the highest accepted seq: what every puller must end with. */
class Oracle {
  readonly newest = new Map<string, { readonly seq: number; readonly op: string; readonly payload: unknown }>()
  record(entries: ReadonlyArray<Entry>, seqs: ReadonlyArray<number>) {
    entries.forEach((e, i) => {
      const known = this.newest.get(e.entity_key)
      if (known === undefined || known.seq < seqs[i]) {
        this.newest.set(e.entity_key, { seq: seqs[i], op: e.op, payload: e.op === "delete" ? null : e.payload })
      }
    })
  }
  check(puller: Puller, who: string) {
    assert.strictEqual(puller.state.size, this.newest.size, `${who}: keys`)
    for (const [key, expected] of this.newest) {
      const got = puller.state.get(key)
      assert.deepStrictEqual(
        got && { seq: got.seq, op: got.op, payload: got.op === "delete" ? null : got.payload },
        expected,
        `${who}: ${key}`
      )
    }
  }
}

const write = (clientSeq: number, key: string, n: number): Entry => ({
  client_seq: clientSeq,
  project: "p",
  entity: "doc",
  entity_key: key,
  op: n % 7 === 0 ? "delete" : "upsert",
  payload: { n, filler: "x".repeat(40) }
})

describe("compaction with real server processes", () => {
  const procs = new Processes()
  beforeAll(() => assertBuilt())
  afterEach(async () => {
    await procs.killAll()
  })

  it(
    "two servers on one PostgreSQL database, one compacting under pushes and pulls: no puller misses a key's newest version",
    async ({ onTestFinished, skip }) => {
      const base = process.env.AUTOSYNC_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test"
      const reachable = await psql(base, "select 1").then(() => true, (error: unknown) => {
        const message = `PostgreSQL is not reachable (${String(error)})`
        if (process.env.CI === "true") throw new Error(`${message}; CI needs it`)
        console.warn(`SKIPPED the two-server compaction test: ${message}. Set AUTOSYNC_TEST_PG_URL to run it.`)
        return false
      })
      if (!reachable) return skip()
      const schema = `autosync_compact_${randomBytes(6).toString("hex")}`
      await psql(base, `create schema ${schema}`)
      onTestFinished(() => psql(base, `drop schema if exists ${schema} cascade`).then(() => undefined))
      const url = `${base}${base.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}`
      const created = await procs.runCli(["token", "create", "--project", "p"], { env: { AUTOSYNC_DATABASE_URL: url } })
      assert.strictEqual(created.code, 0, created.stderr)
      const token = created.stdout.trim().split("\n").pop()!
      const start = async (name: string, args: ReadonlyArray<string>) => {
        const proc = procs.cli(name, ["serve", "--database-url", url, "--port", "0", ...args])
        const address = await waitFor(`${name} to listen`, 60_000, () => {
          if (!proc.running) throw new Error(`${name} exited\n${proc.describe()}`)
          return /listening on (http:\/\/[0-9.]+:\d+)/.exec(proc.stdout)?.[1]
        })
        return { proc, url: address }
      }
      const compacting = await start("compacting", ["--compact-threshold", "10", "--compact-interval", "100 millis"])
      const plain = await start("plain", ["--compact-threshold", "0"])
      const servers = [compacting.url, plain.url]

      const oracle = new Oracle()
      const pullers = Array.from({ length: 3 }, () => new Puller(token))
      let writing = true
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let b = 0; b < 25; b++) {
          const entries = Array.from(
            { length: 8 },
            (_, i) => write(b * 8 + i + 1, `k${(w * 5 + b * 3 + i) % 12}`, b * 8 + i)
          )
          oracle.record(entries, await push(servers[(w + b) % 2], token, `writer-${w}`, entries))
        }
      })
      // Pullers follow the log in small pages from both servers while the writers write.
      const following = pullers.map(async (puller, p) => {
        let i = 0
        while (writing) await puller.page(servers[(p + i++) % 2], 3)
      })
      await Promise.all(writers)
      writing = false
      await Promise.all(following)
      // The compacting server catches up with the last writes: one row per key.
      await waitFor("the log compacted to one row per key", 120_000, async () => {
        const rows = Number((await psql(url, "select count(*) from autosync_log")).trim())
        return rows === oracle.newest.size ? rows : undefined
      }, { intervalMs: 200 })
      assert.match(compacting.proc.stderr + compacting.proc.stdout, /compaction removed \d+ superseded rows in \d+ ms/)
      for (const [p, puller] of pullers.entries()) {
        await puller.catchUp(servers[p % 2], 3)
        oracle.check(puller, `puller ${p}`)
      }
      // A puller that joins now gets a snapshot: one row per key.
      const late = new Puller(token)
      await late.catchUp(plain.url, 5)
      oracle.check(late, "late puller")
    },
    300_000
  )

  it("a compaction SIGKILLed half way leaves the log consistent: newest per key, retries keep their seqs", async () => {
    const tmp = tempDir("compact-kill")
    const db = tmp.file("server.db")
    try {
      const token = await createToken(procs, db, ["p"])
      let server = await startServer(procs, db, ["--compact-threshold", "0"])
      const oracle = new Oracle()
      // 30 pushes of 1,000 writes to 500 keys: 29,500 superseded rows.
      const pushes: Array<{ readonly entries: ReadonlyArray<Entry>; readonly seqs: ReadonlyArray<number> }> = []
      const follower = new Puller(token)
      for (let b = 0; b < 30; b++) {
        const entries = Array.from(
          { length: 1000 },
          (_, i) => write(b * 1000 + i + 1, `k${(b * 7 + i) % 500}`, b * 1000 + i)
        )
        const seqs = await push(server.url, token, "big", entries)
        oracle.record(entries, seqs)
        pushes.push({ entries, seqs })
        if (b === 15) await follower.catchUp(server.url, 1000) // a replica that followed half the log
      }
      await server.proc.stop()
      // 10 rows per transaction: thousands of commits. Killed once it has written some (its WAL grew).
      const walBefore = Fs.statSync(`${db}-wal`, { throwIfNoEntry: false })?.size ?? 0
      const compaction = procs.cli("compact", ["compact", "--db", db, "--batch-size", "10"])
      await waitFor(
        "the compaction to write",
        60_000,
        () =>
          (Fs.statSync(`${db}-wal`, { throwIfNoEntry: false })?.size ?? 0) > walBefore + 256 * 1024 ||
          !compaction.running ||
          undefined
      )
      await compaction.kill("SIGKILL")
      const stats = JSON.parse((await procs.runCli(["status", "--db", db, "--json"])).stdout)
      // Not asserted (a fast machine might finish first): logged, to see the case was exercised.
      console.info(`compaction killed with ${stats.rows} rows left of 30000 (500 keys)`)

      server = await startServer(procs, db, ["--compact-threshold", "0"])
      // Every push retried: its original seqs, nothing stored.
      for (const { entries, seqs } of pushes) {
        assert.deepStrictEqual(await push(server.url, token, "big", entries), seqs)
      }
      const after = JSON.parse((await procs.runCli(["status", "--db", db, "--json"])).stdout)
      assert.strictEqual(after.latest_seq, 30_000)
      assert.strictEqual(after.rows, stats.rows, "the retries stored nothing")
      // Pullers converge: the one that followed half the log, and one that joins now.
      await follower.catchUp(server.url, 1000)
      oracle.check(follower, "follower")
      const joiner = new Puller(token)
      await joiner.catchUp(server.url, 1000)
      oracle.check(joiner, "joiner")
      // And a compaction to the end finishes the job.
      await server.proc.stop()
      const report = await procs.runCli(["compact", "--db", db, "--json"])
      assert.strictEqual(report.code, 0, report.stderr)
      assert.strictEqual(JSON.parse(report.stdout).removed, stats.rows - 500)
      const final = JSON.parse((await procs.runCli(["status", "--db", db, "--json"])).stdout)
      assert.deepInclude(final, { rows: 500, superseded: 0, latest_seq: 30_000 })
    } finally {
      tmp.remove()
    }
  }, 300_000)
})
