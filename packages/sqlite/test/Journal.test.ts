/**
 * The bounded journal on SQLite: what survives a reopen, how an older file is migrated and
 * pruned, and that the file stays the size of the data, not of its history.
 */
import { LocalStore } from "@autosync/core"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { statSync } from "node:fs"
import { join } from "node:path"
import { SqliteLocalStore, SqliteMigrations } from "../src/index.js"
import { tempDir, withFile } from "./utils.js"

const write = (entityKey: string, payload: unknown) => ({
  project: "p",
  entity: "doc",
  entityKey,
  op: "upsert",
  payload
})

const pulled = (seq: number, entityKey: string, payload: unknown) => ({
  seq,
  project: "p",
  entity: "doc",
  entityKey,
  op: "upsert",
  payload,
  occurredAt: new Date(0)
})

const sqlRows = <A extends object>(query: string) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(query))

/** A replica as autosync left it before the bounded journal: migrations 1 to 3, every row kept. */
const makeUnprunedReplica = (path: string, statements: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* SqliteClient.make({ filename: path })
    const older = Object.fromEntries(
      Object.entries(SqliteMigrations.migrations).filter(([key]) => Number(key.split("_")[0]) <= 3)
    )
    yield* Migrator.make({})({ loader: Migrator.fromRecord(older), table: SqliteMigrations.migrationsTable }).pipe(
      Effect.provideService(SqlClient.SqlClient, client)
    )
    for (const statement of statements) yield* client.unsafe(statement)
  })).pipe(Effect.provide(Reactivity.layer), Effect.orDie)

describe("the bounded journal on SQLite", () => {
  it.scoped("journal seqs go on after a reopen with an empty journal; ackedThrough survives it", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "replica.db")
      yield* withFile(
        path,
        Effect.gen(function*() {
          const store = yield* LocalStore.LocalStore
          const seqs = yield* store.appendLocal("cloud", [write("a", 1), write("b", 2)])
          yield* store.ackMutationSeqs("cloud", seqs.map((seq, i) => ({ seq, serverSeq: i + 1 })))
          assert.strictEqual((yield* store.journalSize).rows, 0)
        })
      )
      yield* withFile(
        path,
        Effect.gen(function*() {
          const store = yield* LocalStore.LocalStore
          assert.strictEqual(yield* store.ackedThrough, 2)
          assert.deepStrictEqual(yield* store.appendLocal("cloud", [write("a", 3)]), [3])
          assert.strictEqual(yield* store.ackedThrough, 2)
        })
      )
    }))

  it.scoped("an unpruned file is migrated: its journal pruned, the facts kept, its seqs going on", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "old.db")
      yield* makeUnprunedReplica(path, [
        "INSERT INTO sync_meta (key, value) VALUES ('client_id', 'replica-old')",
        "INSERT INTO sync_state (target_key, last_enqueued_seq, last_acked_seq, last_pulled_seq, updated_at) VALUES ('cloud', 4, 3, 20, 0)",
        // Acked: a at 10 (the cursor passed it), b at 30 (it did not); c acked without a server seq; d pending.
        `INSERT INTO sync_mutations (target_key, source, seq, project, entity, entity_key, op, payload, occurred_at, acked_at, server_seq)
         VALUES ('cloud', 'local', 1, 'p', 'doc', 'a', 'upsert', '"mine a"', 0, 1, 10),
                ('cloud', 'local', 2, 'p', 'doc', 'b', 'upsert', '"mine b"', 0, 1, 30),
                ('cloud', 'local', 3, 'p', 'doc', 'c', 'upsert', '"mine c"', 0, 1, NULL),
                ('cloud', 'local', 4, 'p', 'doc', 'd', 'upsert', '"mine d"', 0, NULL, NULL)`,
        `INSERT INTO sync_mutations (target_key, source, seq, project, entity, entity_key, op, payload, occurred_at, status)
         VALUES ('cloud', 'remote', 11, 'p', 'doc', 'x', 'upsert', '"x"', 0, 'applied'),
                ('cloud', 'remote', 12, 'p', 'doc', 'y', 'upsert', '"y"', 0, 'discarded'),
                ('cloud', 'remote', 13, 'p', 'doc', 'z', 'upsert', '"z"', 0, 'dead_letter'),
                ('cloud', 'remote', 14, 'p', 'doc', 'd', 'upsert', '"theirs d"', 0, 'kept_aside')`,
        `INSERT INTO sync_documents (project, entity, entity_key, value, updated_at)
         VALUES ('p', 'doc', 'a', '"mine a"', 0), ('p', 'doc', 'b', '"mine b"', 0), ('p', 'doc', 'd', '"mine d"', 0)`
      ])
      yield* withFile(
        path,
        Effect.gen(function*() {
          const store = yield* LocalStore.LocalStore
          assert.strictEqual(store.clientId, "replica-old")
          // Left: the pending row and the kept-aside one; one fact, b's (a's the cursor passed).
          assert.deepStrictEqual(
            yield* sqlRows("SELECT source, seq FROM sync_mutations ORDER BY source, seq"),
            [{ source: "local", seq: 4 }, { source: "remote", seq: 14 }]
          )
          assert.deepStrictEqual(yield* sqlRows("SELECT entity_key, own_acked_seq FROM sync_key_facts"), [
            { entity_key: "b", own_acked_seq: 30 }
          ])
          assert.deepStrictEqual(yield* sqlRows("PRAGMA auto_vacuum"), [{ auto_vacuum: 2 }])
          assert.strictEqual(yield* store.ackedThrough, 3)
          // The rule still holds: b's write at 30 supersedes 25; d settles when acked.
          yield* store.enroll("p")
          assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(25, "b", "older b")), "superseded")
          yield* store.ackMutationSeqs("cloud", [{ seq: 4, serverSeq: 15 }])
          assert.deepStrictEqual(yield* store.getDocument("p", "doc", "d"), Option.some("mine d"))
          assert.deepStrictEqual(yield* store.appendLocal("cloud", [write("e", 5)]), [5])
          assert.strictEqual((yield* store.journalSize).rows, 1)
        })
      )
    }))

  it.scoped("after many writes to the same keys, the file stays within 2x of its size after the first round", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "growth.db")
      const keys = 1_000
      const rounds = 20
      // One round: every key written once, pushed (acked), and the pull moved past our writes.
      const round = (r: number) =>
        Effect.gen(function*() {
          const store = yield* LocalStore.LocalStore
          const writes = Array.from({ length: keys }, (_, i) => write(`k${i}`, { round: r, text: `value ${r}/${i}` }))
          const seqs = yield* store.appendLocal("cloud", writes)
          yield* store.ackMutationSeqs("cloud", seqs.map((seq) => ({ seq, serverSeq: seq })))
          yield* store.applyPulledMutations("cloud", [], { throughSeq: seqs[seqs.length - 1] })
        })
      const fileSize = Effect.gen(function*() {
        yield* SqliteLocalStore.reclaimSpace
        yield* sqlRows("PRAGMA wal_checkpoint(TRUNCATE)")
        return statSync(path).size
      })
      const sizes = yield* withFile(
        path,
        Effect.gen(function*() {
          yield* round(0)
          const first = yield* fileSize
          for (let r = 1; r < rounds; r++) yield* round(r)
          const journal = yield* (yield* LocalStore.LocalStore).journalSize
          return { first, last: yield* fileSize, journal }
        })
      )
      assert.deepStrictEqual({ rows: sizes.journal.rows, keyFacts: sizes.journal.keyFacts }, { rows: 0, keyFacts: 0 })
      assert.isAtMost(
        sizes.last,
        2 * sizes.first,
        `after ${keys * rounds} writes: ${sizes.last} bytes, after ${keys}: ${sizes.first}`
      )
    }))

  it.scoped("a backlog written offline is given back once acked (incremental vacuum)", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "backlog.db")
      yield* withFile(
        path,
        Effect.gen(function*() {
          const store = yield* LocalStore.LocalStore
          const big = "x".repeat(2_000)
          const seqs: Array<number> = []
          for (let b = 0; b < 10; b++) {
            seqs.push(
              ...(yield* store.appendLocal("cloud", Array.from({ length: 500 }, (_, i) => write(`k${i}`, big))))
            )
          }
          const before = (yield* store.journalSize).fileBytes ?? 0
          yield* store.ackMutationSeqs("cloud", seqs.map((seq) => ({ seq, serverSeq: seq })))
          yield* SqliteLocalStore.reclaimSpace
          const after = (yield* store.journalSize).fileBytes ?? 0
          assert.isBelow(after, before / 4, `${before} bytes with the backlog, ${after} after it was acked`)
          assert.deepStrictEqual(yield* sqlRows("SELECT freelist_count AS n FROM pragma_freelist_count()"), [{ n: 0 }])
        })
      )
    }))
})
