/**
 * Telling files apart, and opening a replica read-only: every foreign file is refused naming
 * what it is, and no file is changed by looking at it (its bytes hash the same, and no `-wal` or
 * `-shm` side file is left behind).
 */
import { LocalStore } from "@autosync/core"
import { hash, sideFiles } from "@autosync/test-support"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Option, Scope } from "effect"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Documents, ReplicaFile, SqliteLocalStore, SqliteMigrations } from "../src/index.js"
import { tempDir, withFile } from "./utils.js"

/** Runs SQL on `path` through a plain connection (no autosync), to make foreign files. */
const exec = (path: string, statements: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* SqliteClient.make({ filename: path, disableWAL: true })
    for (const statement of statements) yield* client.unsafe(statement)
  })).pipe(Effect.provide(Reactivity.layer), Effect.orDie)

/** A replica with one document and one pending row, closed again. */
const makeReplica = (path: string) =>
  withFile(
    path,
    Effect.gen(function*() {
      const docs = yield* Documents.Documents
      yield* docs.put("p", "note", "k1", { text: "one" })
    }).pipe(Effect.provide(Documents.layer))
  ).pipe(Effect.orDie)

/** A replica as the previous release left it: every migration but the latest one ran. */
const makeOlderReplica = (path: string) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* SqliteClient.make({ filename: path })
    const older = Object.fromEntries(
      Object.entries(SqliteMigrations.migrations).filter(([key]) =>
        Number(key.split("_")[0]) < SqliteMigrations.latestMigration
      )
    )
    yield* Migrator.make({})({ loader: Migrator.fromRecord(older), table: SqliteMigrations.migrationsTable }).pipe(
      Effect.provideService(SqlClient.SqlClient, client)
    )
  })).pipe(Effect.provide(Reactivity.layer), Effect.orDie)

/** Foreign files of every kind, in `dir`. */
const foreignFiles = (dir: string) =>
  Effect.gen(function*() {
    const server = join(dir, "server.db")
    // The server's tables (as @autosync/server's migrations create them), in WAL mode as it runs.
    yield* exec(server, [
      "PRAGMA journal_mode = WAL",
      "CREATE TABLE autosync_server_migrations (migration_id integer PRIMARY KEY, created_at datetime, name text)",
      "CREATE TABLE autosync_log (seq INTEGER PRIMARY KEY, client_id TEXT, client_seq INTEGER, project TEXT)",
      "CREATE TABLE autosync_tokens (token_hash TEXT PRIMARY KEY, projects TEXT, created_at INTEGER)",
      "INSERT INTO autosync_log VALUES (1, 'c', 1, 'p')"
    ])
    const plain = join(dir, "plain.db")
    yield* exec(plain, ["CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)", "INSERT INTO notes VALUES (1, 'x')"])
    const text = join(dir, "notes.txt")
    writeFileSync(text, "these are my notes, not a database\n".repeat(20))
    const empty = join(dir, "empty.db")
    writeFileSync(empty, "")
    const directory = join(dir, "a-directory")
    mkdirSync(directory)
    return [
      { path: server, kind: "Server", message: "is an autosync server database, not a replica" },
      { path: plain, kind: "Plain", message: "is a SQLite database without autosync's tables" },
      { path: text, kind: "NotSqlite", message: "is not a SQLite database" },
      { path: empty, kind: "Empty", message: "is empty" },
      { path: directory, kind: "NotSqlite", message: "is not a SQLite database" }
    ] as const
  })

const readonlyStore = (path: string) =>
  Effect.map(Layer.build(SqliteLocalStore.layerFileReadonly(path)), Context.get(LocalStore.LocalStore))

const readonlyDocuments = (path: string) =>
  Effect.map(
    Layer.build(Documents.layer.pipe(Layer.provide(SqliteLocalStore.layerFileReadonly(path)))),
    Context.get(Documents.Documents)
  )

describe("ReplicaFile", () => {
  it.scoped("inspect tells every kind of file apart and changes none of them", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const replica = join(dir, "replica.db")
      yield* makeReplica(replica)
      const files = yield* foreignFiles(dir)
      const hashes = new Map(
        files.filter((f) => f.kind !== "NotSqlite" || f.path.endsWith(".txt")).map((f) => [
          f.path,
          hash(f.path)
        ])
      )
      hashes.set(replica, hash(replica))

      assert.deepStrictEqual(yield* ReplicaFile.inspect(join(dir, "missing.db")), ReplicaFile.Kind.Missing())
      assert.isFalse(existsSync(join(dir, "missing.db")))
      for (const file of files) assert.strictEqual((yield* ReplicaFile.inspect(file.path))._tag, file.kind, file.path)
      assert.deepStrictEqual(
        yield* ReplicaFile.inspect(replica),
        ReplicaFile.Kind.Replica({
          schemaVersion: SqliteMigrations.schemaVersion,
          migration: SqliteMigrations.latestMigration
        })
      )
      for (const [path, before] of hashes) {
        assert.strictEqual(hash(path), before, `${path} unchanged`)
        assert.deepStrictEqual(sideFiles(path), [], `${path}: no side files left`)
      }
      // core's rule names this package's tables: a new replica has every one of them
      const tables = new Set(
        yield* Effect.scoped(Effect.flatMap(
          SqliteClient.make({ filename: replica, readonly: true }),
          (sql) => sql<{ readonly name: string }>`SELECT name FROM sqlite_master WHERE type = 'table'`
        )).pipe(Effect.map((rows) => rows.map((r) => r.name)), Effect.provide(Reactivity.layer))
      )
      assert.deepStrictEqual(ReplicaFile.replicaTables.filter((t) => !tables.has(t)), [])
    }))

  it.scoped("layerFileReadonly refuses every file that is not a replica, naming what it is; nothing changes", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const files = yield* foreignFiles(dir)
      for (const file of files) {
        const before = file.path.endsWith("a-directory") ? undefined : hash(file.path)
        const error = yield* Effect.flip(Effect.scoped(readonlyStore(file.path)))
        assert.strictEqual(error.reason, "incompatible", file.path)
        assert.include(error.message, JSON.stringify(file.path))
        assert.include(error.message, file.message)
        if (before !== undefined) assert.strictEqual(hash(file.path), before, `${file.path} unchanged`)
        assert.deepStrictEqual(sideFiles(file.path), [], `${file.path}: no side files left`)
      }
      const missing = join(dir, "missing.db")
      const error = yield* Effect.flip(Effect.scoped(readonlyStore(missing)))
      assert.include(error.message, "does not exist")
      assert.isFalse(existsSync(missing), "a read-only open creates nothing")
    }))

  it.scoped("layerFile (which creates and migrates) refuses a server's database and leaves it as it was", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const [server] = yield* foreignFiles(dir)
      const before = hash(server.path)
      const error = yield* Effect.flip(withFile(server.path, LocalStore.LocalStore))
      assert.strictEqual(error.reason, "incompatible")
      assert.include(error.message, `${JSON.stringify(server.path)} is an autosync server database`)
      assert.strictEqual(hash(server.path), before)
      assert.deepStrictEqual(sideFiles(server.path), [])
    }))

  it.scoped("a replica opened read-only answers every read, refuses every write, and is not changed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "replica.db")
      yield* makeReplica(path)
      const clientId = yield* withFile(path, Effect.map(LocalStore.LocalStore, (s) => s.clientId))
      const before = hash(path)
      assert.deepStrictEqual(sideFiles(path), [])

      yield* Effect.gen(function*() {
        const store = yield* LocalStore.LocalStore
        const docs = yield* Documents.Documents
        assert.strictEqual(store.clientId, clientId)
        assert.strictEqual((yield* store.getSyncState("cloud")).lastEnqueuedSeq, 1)
        assert.strictEqual(yield* store.countPending("cloud"), 1)
        // `status` counts rows of projects not enrolled with this: a count, nothing acked.
        assert.strictEqual(yield* store.skipAckNonEnrolledMutations("cloud"), 1)
        assert.deepStrictEqual(yield* store.listEnrolled, [])
        assert.deepStrictEqual(yield* docs.get("p", "note", "k1"), Option.some({ text: "one" }))
        assert.deepStrictEqual((yield* docs.list("p")).map((d) => d.entityKey), ["k1"])

        const writes: ReadonlyArray<readonly [string, Effect.Effect<unknown, LocalStore.LocalStoreError>]> = [
          ["put", docs.put("p", "note", "k2", 2)],
          ["remove", docs.remove("p", "note", "k1")],
          [
            "appendLocal",
            store.appendLocal("cloud", [{ project: "p", entity: "note", entityKey: "k3", op: "upsert", payload: 3 }])
          ],
          ["enroll", store.enroll("p")],
          ["unenroll", store.unenroll("p")],
          ["acquireLease", store.acquireLease("cloud", "me", "1 minute", new Date())],
          ["ackMutations", store.ackMutations("cloud", 1)],
          ["markFailure", store.markFailure("cloud", "x", new Date(), "transport_failed")],
          ["markHealthy", store.markHealthy("cloud")],
          [
            "applyPulledMutation",
            store.applyPulledMutation("cloud", {
              seq: 1,
              project: "p",
              entity: "note",
              entityKey: "k4",
              op: "upsert",
              payload: 4,
              occurredAt: new Date(0)
            })
          ]
        ]
        for (const [name, write] of writes) {
          const error = yield* Effect.flip(write)
          assert.strictEqual(error.reason, "storage", name)
          assert.include(error.message, `${JSON.stringify(path)} was opened read-only`, name)
        }
        assert.strictEqual(yield* store.countPending("cloud"), 1)
      }).pipe(
        Effect.provide(Documents.layer.pipe(Layer.provideMerge(SqliteLocalStore.layerFileReadonly(path)))),
        Effect.scoped
      )
      assert.strictEqual(hash(path), before, "the file's bytes are unchanged")
      assert.deepStrictEqual(sideFiles(path), [], "no -wal or -shm left behind")
    }))

  it.scoped("read-only beside a running writer: reads see its commits; the writer's side files are left alone", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "replica.db")
      const writerScope = yield* Scope.make()
      const writer = yield* Layer.buildWithScope(
        Documents.layer.pipe(Layer.provideMerge(SqliteLocalStore.layerFile(path))),
        writerScope
      )
      const docs = Context.get(writer, Documents.Documents)
      yield* docs.put("p", "note", "a", 1)
      const read = Effect.scoped(Effect.flatMap(
        readonlyDocuments(path),
        (ro) => Effect.map(ro.list("p"), (list) => list.map((d) => d.entityKey))
      ))
      assert.deepStrictEqual(yield* read, ["a"])
      assert.isTrue(existsSync(`${path}-wal`), "the writer's WAL is still there")
      yield* docs.put("p", "note", "b", 2)
      assert.deepStrictEqual(yield* read, ["a", "b"])
      yield* Scope.close(writerScope, Exit.void)
      assert.deepStrictEqual(sideFiles(path), [], "the last connection cleaned up")
      assert.deepStrictEqual(yield* read, ["a", "b"])
      assert.deepStrictEqual(sideFiles(path), [])
    }))

  it.scoped("a replica of an older migration is refused read-only with how to migrate it; a writable open does", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "old.db")
      yield* makeOlderReplica(path)
      const before = hash(path)
      const error = yield* Effect.flip(Effect.scoped(readonlyStore(path)))
      assert.strictEqual(error.reason, "incompatible")
      assert.include(error.message, JSON.stringify(path))
      assert.include(error.message, `migration ${SqliteMigrations.latestMigration - 1}`)
      assert.include(error.message, "autosync init")
      assert.strictEqual(hash(path), before)
      assert.deepStrictEqual(sideFiles(path), [])
      yield* withFile(path, LocalStore.LocalStore).pipe(Effect.orDie)
      assert.strictEqual(yield* Effect.scoped(Effect.map(readonlyStore(path), (s) => s.clientId.length > 0)), true)
    }))
})
