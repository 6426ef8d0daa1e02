/**
 * The `autosync` command on files that are not (or not only) its replica, as real child
 * processes: `status`, `get` and `list` open a replica read-only and refuse any other file
 * naming what it is; the replica commands refuse a server's database; and none of them changes
 * a file that is not theirs (its bytes hash the same, no `-wal`/`-shm` side file is left).
 * `pnpm test` builds `dist/` before vitest runs.
 */
import { hash, limited, sideFiles } from "@autosync/test-support"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { assert, describe, it } from "vitest"
import { type Exited, type Sandbox, sandbox, unusedPort } from "./CliHarness.js"

// A bound on each test, for a hang; generous, because every command is a node process that takes
// about 0.7 s of CPU to start and the machine may be busy.
const long = 180_000

/** An application's own SQLite database (no autosync tables), in rollback-journal mode. */
const plainDatabase = (path: string) =>
  Effect.runPromise(
    Effect.scoped(Effect.gen(function*() {
      const client = yield* SqliteClient.make({ filename: path, disableWAL: true })
      yield* client.unsafe("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
      yield* client.unsafe("INSERT INTO notes (text) VALUES ('mine')")
    })).pipe(Effect.provide(Reactivity.layer))
  )

/** A server's database, made by the real command. */
const serverDatabase = async (box: Sandbox, path: string) => {
  await box.token(["--db", path], ["p"])
  assert.deepStrictEqual(sideFiles(path), [])
}

/** A failure in one line that names the file, with nothing on stdout. */
const assertRefused = (result: Exited, what: string, file: string, phrase: string, code = 1) => {
  const message = result.stderr.trim()
  assert.strictEqual(result.code, code, `${what}: ${message}`)
  assert.strictEqual(result.stdout, "", what)
  assert.match(message, /^autosync: /, what)
  assert.lengthOf(message.split("\n"), 1, `${what}: one line`)
  assert.include(message, Path.basename(file), `${what} names the file`)
  assert.include(message, phrase, what)
}

describe("autosync on files that are not its replica", () => {
  it(
    "get and list refuse a server's database (status shows its log's stats), a plain SQLite database and a text file; none changes",
    {
      timeout: long
    },
    async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const server = box.path("server.db")
      await serverDatabase(box, server)
      const plain = box.path("app.db")
      await plainDatabase(plain)
      const text = box.path("notes.txt")
      Fs.writeFileSync(text, "shopping: milk, eggs\n".repeat(50))
      const files = [
        { file: server, phrase: "is an autosync server database, not a replica (give the replica's --db)" },
        { file: plain, phrase: "is a SQLite database without autosync's tables" },
        { file: text, phrase: "is not a SQLite database" }
      ]
      const before = files.map(({ file }) => hash(file))
      const commands = [["status"], ["status", "--json"], ["get", "p", "note", "k"], ["list", "p"], [
        "list",
        "--json",
        "p"
      ]]
      const jobs = files.flatMap(({ file, phrase }) =>
        // status on a server's database shows its log's stats (below).
        commands.filter((command) => file !== server || command[0] !== "status").map((command) => async () => {
          const args = [command[0], "--db", file, ...command.slice(1)]
          return { args, file, phrase, result: await box.run(args) }
        })
      )
      // One at a time: a read-only reader removes the WAL side files it created only when it is the
      // last connection on the file, so readers that overlap may leave them (documented).
      for (const { args, file, phrase, result } of await limited(1, jobs)) {
        assertRefused(result, `autosync ${args.join(" ")}`, file, phrase)
      }
      assert.match(await box.ok(["status", "--db", server]), /^server log +.*server\.db\nrows +0\n/)
      const stats = JSON.parse(await box.ok(["status", "--db", server, "--json"]))
      assert.deepInclude(stats, { rows: 0, live_keys: 0, tombstones: 0, last_compaction: null })
      files.forEach(({ file }, i) => {
        assert.strictEqual(hash(file), before[i], `${file} unchanged`)
        assert.deepStrictEqual(sideFiles(file), [], `${file}: no side files`)
      })
      assert.deepStrictEqual(Fs.readdirSync(box.dir).sort(), ["app.db", "notes.txt", "server.db"])
    }
  )

  it("init, enroll, unenroll, put and agent refuse a server's database and leave it as it was", {
    timeout: long
  }, async ({ onTestFinished }) => {
    const box = sandbox(onTestFinished)
    const server = box.path("server.db")
    await serverDatabase(box, server)
    const before = hash(server)
    const nowhere = `http://127.0.0.1:${await unusedPort()}`
    const commands = [
      ["init", "--db", server],
      ["enroll", "--db", server, "p"],
      ["unenroll", "--db", server, "p"],
      ["put", "--db", server, "p", "note", "k", "1"],
      ["agent", "--db", server, "--server", nowhere, "--token", "t"]
    ]
    const results = await limited(3, commands.map((args) => async () => ({ args, result: await box.run(args) })))
    for (const { args, result } of results) {
      assertRefused(result, `autosync ${args.join(" ")}`, server, "is an autosync server database, not a replica")
    }
    assert.strictEqual(hash(server), before, "the server's database is unchanged")
    assert.deepStrictEqual(sideFiles(server), [])
    // And it still works as the server's database: the token store reads it.
    await box.token(["--db", server], ["q"])
  })

  it("status, get and list change nothing in a replica: same bytes, no side files, the same client id", {
    timeout: long
  }, async ({ onTestFinished }) => {
    const box = sandbox(onTestFinished)
    const db = box.path("replica.db")
    const init = await box.ok(["init", "--db", db])
    const clientId = init.match(/client id (\S+)\)/)?.[1]
    assert.isDefined(clientId, init)
    await box.ok(["put", "--db", db, "p", "note", "k1", "{\"text\":\"one\"}"])
    const before = hash(db)
    assert.deepStrictEqual(sideFiles(db), [])

    const report = await box.status(db)
    assert.strictEqual(report.client_id, clientId)
    assert.strictEqual(report.pending, 1)
    assert.strictEqual(report.non_enrolled_pending, 1)
    assert.strictEqual((await box.ok(["get", "--db", db, "p", "note", "k1"])).trim(), "{\"text\":\"one\"}")
    assert.strictEqual((await box.ok(["list", "--db", db, "p"])).trim(), "note\tk1\t{\"text\":\"one\"}")
    const missing = await box.run(["get", "--db", db, "p", "note", "nope"])
    assert.strictEqual(missing.code, 3, missing.stderr)

    assert.strictEqual(hash(db), before, "the replica's bytes are unchanged")
    assert.deepStrictEqual(sideFiles(db), [], "no -wal or -shm left behind")
    // Non-enrolled rows were counted, not acked: still pending.
    assert.strictEqual((await box.status(db)).pending, 1)
  })

  it("put and enroll refuse an empty or padded project, naming why, and write nothing", {
    timeout: long
  }, async ({ onTestFinished }) => {
    const box = sandbox(onTestFinished)
    const db = box.path("replica.db")
    await box.ok(["init", "--db", db])
    const cases = [
      { project: "", phrase: "project must not be empty" },
      { project: "   ", phrase: "project must not be empty" },
      { project: " notes", phrase: "project must not start or end with whitespace" },
      { project: "notes\t", phrase: "project must not start or end with whitespace" }
    ]
    const jobs = cases.flatMap(({ phrase, project }) =>
      [
        async () => ({ phrase, args: ["put", "--db", db, project, "note", "k", "1"], code: 2 }),
        async () => ({ phrase, args: ["enroll", "--db", db, project], code: undefined })
      ].map((job) => async () => {
        const { args, code, phrase } = await job()
        return { args, code, phrase, result: await box.run(args) }
      })
    )
    for (const { args, code, phrase, result } of await limited(3, jobs)) {
      const what = `autosync ${args.map((a) => JSON.stringify(a)).join(" ")}`
      if (code !== undefined) assert.strictEqual(result.code, code, `${what}: ${result.stderr}`)
      else assert.notStrictEqual(result.code, 0, `${what}: ${result.stderr}`)
      assert.include(result.stderr, phrase, what)
      assert.lengthOf(result.stderr.trim().split("\n"), 1, `${what}: one line`)
    }
    const report = await box.status(db)
    assert.strictEqual(report.pending, 0)
    assert.deepStrictEqual(report.enrolled, [])
  })
})
