/**
 * `autosync status` shows the stall a manager recorded in the replica file (`LocalStore.markStalled`),
 * reading the file alone: with the lease held (a manager runs) as it is, with the lease free as
 * the last manager's verdict. The built bin runs as a real child process; the state is written
 * through the store API, as the manager writes it.
 */
import { LocalStore } from "@autosync/core"
import { SqliteLocalStore } from "@autosync/sqlite"
import { Effect } from "effect"
import { assert, describe, it } from "vitest"
import { sandbox } from "./CliHarness.js"

// A bound on each test, for a hang; every command is a node process that may start slowly on a busy machine.
const long = 180_000

const since = new Date("2026-01-02T03:04:05.000Z")
const why = "the server answered pushes but no pending row was acked (last acked seq 0), 5 cycles in a row"

// Writes to the replica file through the store, as a manager would.
const onStore = (db: string, f: (store: LocalStore.LocalStore["Type"]) => Effect.Effect<unknown, unknown>) =>
  Effect.runPromise(Effect.flatMap(LocalStore.LocalStore, f).pipe(Effect.provide(SqliteLocalStore.layerFile(db))))

describe("autosync status and a recorded stall", () => {
  it(
    "prints the stall the file holds (text and --json), says when no manager runs, and nothing once cleared",
    async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const db = box.path("replica.db")
      await box.ok(["init", "--db", db])
      const none = await box.status(db)
      assert.strictEqual(none.stalled, null)
      assert.match(await box.ok(["status", "--db", db]), /^stalled\s+-$/m)

      await onStore(db, (store) => store.markStalled("cloud", { kind: "push", since, why }))
      const [json, text] = await Promise.all([box.status(db), box.ok(["status", "--db", db])])
      assert.deepStrictEqual(json.stalled, { kind: "push", since: since.toISOString(), why })
      assert.strictEqual(json.lease_owner, null)
      assert.include(
        text,
        `stalled          push since ${since.toISOString()}: ${why} (recorded by the last manager; no manager runs now)`
      )

      // While a manager holds the lease, the stall is its current verdict.
      await onStore(db, (store) => store.acquireLease("cloud", "agent-1", "1 hour", new Date()))
      const held = await box.ok(["status", "--db", db])
      assert.match(held, /^lease holder\s+agent-1 until /m)
      assert.match(held, new RegExp(`^stalled\\s+push since ${since.toISOString()}: .*in a row$`, "m"))

      await onStore(db, (store) => store.markStalled("cloud", undefined))
      assert.strictEqual((await box.status(db)).stalled, null)
    },
    long
  )
})
