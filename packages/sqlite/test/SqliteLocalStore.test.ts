import { LocalStore } from "@autosync/core"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { spawnSync } from "node:child_process"
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { SqliteLocalStore, SqliteMigrations } from "../src/index.js"
import { tempDir, withFile } from "./utils.js"

const store = LocalStore.LocalStore
const sqlRows = <A extends object>(query: string) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(query))

const openError = (path: string) => Effect.flip(withFile(path, store))

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

describe("SqliteLocalStore", () => {
  it.scoped("reopening the file keeps the clientId, the state, the journal and kept-aside mutations", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "replica.db")
      const first = yield* withFile(
        path,
        Effect.gen(function*() {
          const s = yield* store
          yield* s.enroll("p")
          yield* s.appendLocal("cloud", [write("k", "mine"), write("j", 1)])
          assert.strictEqual(yield* s.applyPulledMutation("cloud", pulled(7, "k", "theirs")), "kept_aside")
          yield* s.ackMutationSeqs("cloud", [{ seq: 2, serverSeq: 3 }])
          yield* s.markFailure("cloud", "boom", new Date(60_000), "transport_failed")
          assert.isTrue(yield* s.acquireLease("cloud", "worker-1", "1 minute", new Date(0)))
          return { clientId: s.clientId, state: yield* s.getSyncState("cloud") }
        })
      )
      yield* withFile(
        path,
        Effect.gen(function*() {
          const s = yield* store
          assert.strictEqual(s.clientId, first.clientId)
          assert.deepStrictEqual(yield* s.getSyncState("cloud"), first.state)
          assert.deepStrictEqual(yield* s.listEnrolled, ["p"])
          assert.deepStrictEqual((yield* s.listPendingMutations("cloud", 10)).map((r) => r.seq), [1])
          assert.deepStrictEqual(yield* s.getDocument("p", "doc", "k"), Option.some("mine"))
          assert.isFalse(yield* s.acquireLease("cloud", "worker-2", "1 minute", new Date(1_000)))
          // The kept-aside mutation survived the restart: our write got seq 5 < 7, so theirs wins.
          yield* s.ackMutationSeqs("cloud", [{ seq: 1, serverSeq: 5 }])
          assert.deepStrictEqual(yield* s.getDocument("p", "doc", "k"), Option.some("theirs"))
          // New local writes continue the journal's seqs.
          assert.deepStrictEqual(yield* s.appendLocal("cloud", [write("x", 0)]), [3])
        })
      )
    }))

  it.scoped("two connections on one file share the clientId, the journal and the lease", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "shared.db")
      const a = yield* Layer.build(SqliteLocalStore.layerFile(path))
      const b = yield* Layer.build(SqliteLocalStore.layerFile(path))
      const sa = yield* Effect.provide(store, a)
      const sb = yield* Effect.provide(store, b)
      assert.strictEqual(sa.clientId, sb.clientId)
      assert.isTrue(yield* sa.acquireLease("cloud", "A", "10 seconds", new Date(0)))
      assert.isFalse(yield* sb.acquireLease("cloud", "B", "10 seconds", new Date(5_000)))
      assert.isTrue(yield* sb.acquireLease("cloud", "B", "10 seconds", new Date(10_000)))
      assert.isFalse(yield* sa.acquireLease("cloud", "A", "10 seconds", new Date(10_001)))
      const seqs = [
        ...(yield* sa.appendLocal("cloud", [write("a", 1)])),
        ...(yield* sb.appendLocal("cloud", [write("b", 2)])),
        ...(yield* sa.appendLocal("cloud", [write("c", 3)]))
      ]
      assert.deepStrictEqual(seqs, [1, 2, 3])
      assert.strictEqual(yield* sb.countPending("cloud"), 3)
    }))

  it.scoped("migrations create the tables and record the schema version; WAL and a busy timeout are set", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "fresh.db")
      yield* withFile(
        path,
        Effect.gen(function*() {
          const tables = yield* sqlRows<{ name: string }>(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
          )
          assert.deepStrictEqual(tables.map((t) => t.name), [
            "autosync_migrations",
            "sync_dead_letters",
            "sync_documents",
            "sync_enrolled_projects",
            "sync_key_facts",
            "sync_meta",
            "sync_mutations",
            "sync_state"
          ])
          const meta = yield* sqlRows<{ key: string; value: string }>("SELECT key, value FROM sync_meta ORDER BY key")
          assert.deepStrictEqual(meta.map((m) => m.key), ["client_id", "last_local_seq", "schema_version"])
          assert.strictEqual(meta[2].value, String(SqliteMigrations.schemaVersion))
          assert.deepStrictEqual(
            yield* sqlRows("SELECT migration_id, name FROM autosync_migrations"),
            [
              { migration_id: 1, name: "init" },
              { migration_id: 2, name: "own_server_seq_index" },
              { migration_id: 3, name: "transport_identity" },
              { migration_id: 4, name: "bounded_journal" },
              { migration_id: 5, name: "stalled" }
            ]
          )
          assert.deepStrictEqual(yield* sqlRows("PRAGMA journal_mode"), [{ journal_mode: "wal" }])
          assert.deepStrictEqual(yield* sqlRows("PRAGMA busy_timeout"), [{ timeout: 5000 }])
          assert.deepStrictEqual(yield* sqlRows("PRAGMA synchronous"), [{ synchronous: 2 }])
          // Pruned journal rows give their space back (SqliteLocalStore.reclaimSpace).
          assert.deepStrictEqual(yield* sqlRows("PRAGMA auto_vacuum"), [{ auto_vacuum: 2 }])
          // Running the migrations again is a no-op.
          assert.deepStrictEqual(yield* SqliteMigrations.run(), [])
        })
      )
    }))

  it.scoped("layerFile options: busy timeout and synchronous", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "options.db")
      yield* Effect.provide(
        Effect.gen(function*() {
          assert.deepStrictEqual(yield* sqlRows("PRAGMA busy_timeout"), [{ timeout: 250 }])
          assert.deepStrictEqual(yield* sqlRows("PRAGMA synchronous"), [{ synchronous: 1 }])
        }),
        SqliteLocalStore.layerFile(path, { busyTimeout: "250 millis", synchronous: "normal" })
      )
    }))

  it.scoped("a file that is not a SQLite database is refused as incompatible, naming the path, unchanged", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "notes.txt")
      const content = "these are my notes, not a database\n".repeat(200)
      writeFileSync(path, content)
      const error = yield* openError(path)
      assert.strictEqual(error.reason, "incompatible")
      assert.include(error.message, path)
      assert.include(error.message, "is not a SQLite database")
      assert.strictEqual(readFileSync(path, "utf8"), content)
      assert.isFalse(existsSync(`${path}-wal`))
    }))

  it.scoped("a journal row damaged in the file fails the read with a message naming it; nothing changes", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "damaged-row.db")
      const error = yield* withFile(
        path,
        Effect.gen(function*() {
          const s = yield* store
          yield* s.enroll("p")
          yield* s.appendLocal("cloud", [write("a", 1)])
          yield* sqlRows("UPDATE sync_mutations SET payload = '{not json' WHERE source = 'local'")
          return yield* Effect.flip(s.listPendingMutations("cloud", 10))
        })
      )
      assert.strictEqual(error._tag, "LocalStoreError")
      assert.include(error.message, "payload is not JSON")
    }))

  it.scoped("a file written by a newer schema version is refused as incompatible and left unchanged", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "newer.db")
      yield* withFile(
        path,
        Effect.zipRight(
          Effect.flatMap(store, (s) => s.appendLocal("cloud", [write("a", 1)])),
          sqlRows("UPDATE sync_meta SET value = '99' WHERE key = 'schema_version'")
        )
      )
      const before = readFileSync(path)
      const error = yield* openError(path)
      assert.strictEqual(error.reason, "incompatible")
      assert.include(error.message, path)
      assert.include(error.message, "schema version 99")
      assert.isTrue(readFileSync(path).equals(before))
      assert.isFalse(existsSync(`${path}-wal`))
    }))

  it.scoped("a file migrated by a newer autosync (unknown migration) is refused as incompatible", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "newer-migration.db")
      yield* withFile(path, sqlRows("INSERT INTO autosync_migrations (migration_id, name) VALUES (99, 'future')"))
      const before = readFileSync(path)
      const error = yield* openError(path)
      assert.strictEqual(error.reason, "incompatible")
      assert.include(error.message, "migration 99")
      assert.isTrue(readFileSync(path).equals(before))
    }))

  it.scoped("a path in a missing directory is a storage error naming the path", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "no", "such", "dir", "x.db")
      const error = yield* openError(path)
      assert.strictEqual(error.reason, "storage")
      assert.include(error.message, path)
      assert.include(error.message, "cannot open")
    }))

  it.scoped("a read-only connection is a storage error naming the path (SQLITE_READONLY)", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "readonly.db")
      // An empty file: the store must create its tables, which a read-only connection cannot.
      writeFileSync(path, "")
      const error = yield* Effect.flip(Effect.provide(
        store,
        SqliteLocalStore.layer.pipe(
          Layer.provide(Layer.orDie(SqliteClient.layer({ filename: path, readonly: true, disableWAL: true })))
        )
      ))
      assert.strictEqual(error.reason, "storage")
      assert.include(error.message, path)
      assert.include(error.message, "read-only")
      assert.strictEqual(readFileSync(path).length, 0)
    }))

  it.scoped("a chmod 0444 database file is a storage error naming the path, file unchanged", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "locked.db")
      yield* withFile(path, Effect.flatMap(store, (s) => s.appendLocal("cloud", [write("a", 1)])))
      chmodSync(path, 0o444)
      chmodSync(dir, 0o777) // SQLite may create its -shm/-wal files beside it
      const before = readFileSync(path)
      let outcome: { ok: boolean; reason?: string; message?: string }
      if (process.getuid?.() === 0) {
        // root writes through chmod 0444: open the file as an unprivileged user in a child process.
        const script = fileURLToPath(new URL("./fixtures/open-store.mjs", import.meta.url))
        const child = spawnSync(process.execPath, [script, path], { uid: 65534, gid: 65534, encoding: "utf8" })
        assert.strictEqual(child.status, 0, child.stderr)
        outcome = JSON.parse(child.stdout)
      } else {
        const exit = yield* Effect.either(withFile(path, store))
        outcome = exit._tag === "Left" ? { ok: false, ...exit.left } : { ok: true }
      }
      assert.isFalse(outcome.ok)
      assert.strictEqual(outcome.reason, "storage")
      assert.include(outcome.message, path)
      assert.include(outcome.message, "read-only")
      assert.isTrue(readFileSync(path).equals(before))
    }))
})
