import { CloudTransport } from "@autosync/core"
import { HttpCloudTransport } from "@autosync/http"
import { SqliteMutationLog, SyncServer, Tokens } from "@autosync/server"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Redacted, TestClock } from "effect"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as Migrations from "../src/internal/migrations.js"
import { baseUrl, entry, tempDbFile, tempDir } from "./helpers.js"
import { describePg, freshSchema, schemaUrl } from "./pg.js"

const tokensError = <A>(effect: Effect.Effect<A, Tokens.TokensError>) =>
  Effect.flatMap(Effect.exit(effect), (exit) =>
    Exit.isFailure(exit) && exit.cause._tag === "Fail"
      ? Effect.succeed(exit.cause.error)
      : Effect.dieMessage(`expected a TokensError, got ${String(exit)}`))

const TokensSuite = (name: string, layer: Layer.Layer<Tokens.Tokens, unknown>) =>
  describe(`Tokens: ${name}`, () => {
    it.effect("create returns a fresh random token, verify its projects", () =>
      Effect.gen(function*() {
        const tokens = yield* Tokens.Tokens
        const a = yield* tokens.create(["p1", "p2", "p1"])
        const b = yield* tokens.create(["p3"])
        assert.match(a, /^as_[A-Za-z0-9_-]{43}$/)
        assert.notStrictEqual(a, b)
        assert.deepStrictEqual([...(yield* tokens.verify(a))].sort(), ["p1", "p2"])
        assert.deepStrictEqual(yield* tokens.verify(Redacted.make(b)), ["p3"])
      }).pipe(Effect.provide(Layer.orDie(layer))))

    it.effect("unknown, empty and altered tokens are refused", () =>
      Effect.gen(function*() {
        const tokens = yield* Tokens.Tokens
        const token = yield* tokens.create(["p1"])
        for (const bad of ["", "as_nope", `${token}x`, token.slice(0, -1), token.toUpperCase()]) {
          const error = yield* tokensError(tokens.verify(bad))
          assert.strictEqual(error.reason, "unknown_token")
        }
        assert.strictEqual((yield* tokensError(tokens.verify(""))).message, "missing bearer token")
      }).pipe(Effect.provide(Layer.orDie(layer))))

    it.effect("an admin token: grant says so, list shows it; it may have no project", () =>
      Effect.gen(function*() {
        const tokens = yield* Tokens.Tokens
        const admin = yield* tokens.create([], { admin: true })
        const plain = yield* tokens.create(["p1"])
        assert.deepStrictEqual(yield* tokens.grant(admin), { id: Tokens.idOf(admin), projects: [], admin: true })
        assert.deepStrictEqual(yield* tokens.grant(plain), { id: Tokens.idOf(plain), projects: ["p1"], admin: false })
        assert.deepStrictEqual(yield* tokens.verify(admin), [])
        const listed = yield* tokens.list
        assert.deepStrictEqual(
          listed.map((t) => [t.id, t.admin]).sort(),
          [[Tokens.idOf(admin), true], [Tokens.idOf(plain), false]].sort()
        )
      }).pipe(Effect.provide(Layer.orDie(layer))))

    it.effect("a token needs at least one valid project, named in one line", () =>
      Effect.gen(function*() {
        const tokens = yield* Tokens.Tokens
        for (const projects of [[], [""], ["ok", "bad\u0000"]]) {
          const error = yield* tokensError(tokens.create(projects))
          assert.strictEqual(error.reason, "invalid_projects")
          assert.notInclude(error.message, "\n")
        }
        assert.strictEqual((yield* tokensError(tokens.create([]))).message, "a token needs at least one project")
        assert.strictEqual((yield* tokensError(tokens.create([""]))).message, "project must not be empty")
        assert.deepStrictEqual(yield* tokens.list, [])
      }).pipe(Effect.provide(Layer.orDie(layer))))

    it.effect("list shows ids, projects and times, never the token; revoke refuses it from then on", () =>
      Effect.gen(function*() {
        const tokens = yield* Tokens.Tokens
        yield* TestClock.setTime(1_000_000)
        const a = yield* tokens.create(["p1", "p2"])
        yield* TestClock.adjust("1 second")
        const b = yield* tokens.create(["p3"])
        const listed = yield* tokens.list
        assert.deepStrictEqual(listed.map((t) => t.id), [Tokens.idOf(a), Tokens.idOf(b)])
        assert.match(listed[0].id, /^tok_[0-9a-f]{12}$/)
        assert.deepStrictEqual([...listed[0].projects].sort(), ["p1", "p2"])
        assert.deepStrictEqual(listed.map((t) => t.createdAt.getTime()), [1_000_000, 1_001_000])
        assert.deepStrictEqual(listed.map((t) => t.lastUsedAt), [undefined, undefined])
        assert.notInclude(JSON.stringify(listed), a.slice(3))

        const revoked = yield* tokens.revoke(Tokens.idOf(a))
        assert.strictEqual(revoked.id, Tokens.idOf(a))
        assert.strictEqual((yield* tokensError(tokens.verify(a))).reason, "unknown_token")
        assert.deepStrictEqual((yield* tokens.list).map((t) => t.id), [Tokens.idOf(b)])
        assert.deepStrictEqual(yield* tokens.verify(b), ["p3"])

        const unknown = yield* tokensError(tokens.revoke(Tokens.idOf(a)))
        assert.strictEqual(unknown.reason, "not_found")
        assert.include(unknown.message, Tokens.idOf(a))
      }).pipe(Effect.provide(Layer.orDie(layer))))

    it.effect("verify records the last use, at most once per resolution period", () =>
      Effect.gen(function*() {
        const tokens = yield* Tokens.Tokens
        yield* TestClock.setTime(5_000_000)
        const token = yield* tokens.create(["p1"])
        const lastUsed = Effect.map(tokens.list, (ts) => ts[0].lastUsedAt?.getTime())
        yield* TestClock.adjust("2 seconds")
        yield* tokens.verify(token)
        assert.strictEqual(yield* lastUsed, 5_002_000)
        yield* TestClock.adjust("9 seconds") // within the period: not written again
        yield* tokens.verify(token)
        assert.strictEqual(yield* lastUsed, 5_002_000)
        yield* TestClock.adjust(Tokens.lastUsedResolution)
        yield* tokens.verify(token)
        assert.strictEqual(yield* lastUsed, 5_021_000)
        // A refused token records nothing.
        yield* TestClock.adjust("1 minute")
        yield* Effect.exit(tokens.verify(`${token}x`))
        assert.strictEqual(yield* lastUsed, 5_021_000)
      }).pipe(Effect.provide(Layer.orDie(layer))))
  })

TokensSuite("memory", Tokens.layerMemory)

TokensSuite("SQLite", Layer.unwrapScoped(Effect.map(tempDbFile, (file) => Tokens.layerSqlite({ file }))))

describe("Tokens in SQLite", () => {
  it.effect("only the SHA-256 of a token is stored", () =>
    Effect.gen(function*() {
      const tokens = yield* Tokens.Tokens
      const token = yield* tokens.create(["p1"])
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<
        { token_hash: string; id: string; projects: string }
      >`SELECT token_hash, id, projects FROM autosync_tokens`
      assert.deepStrictEqual(rows.map((r) => ({ ...r })), [{
        token_hash: Tokens.hash(token),
        id: Tokens.idOf(token),
        projects: "[\"p1\"]"
      }])
      assert.match(rows[0].token_hash, /^[0-9a-f]{64}$/)
    }).pipe(
      Effect.provide(
        Layer.unwrapScoped(Effect.map(tempDbFile, (file) =>
          Tokens.layer.pipe(
            Layer.provideMerge(SqliteMutationLog.layerClient({ file }))
          ))).pipe(Layer.orDie)
      )
    ))

  it.effect("tokens created before ids existed get theirs from the migration", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // The database as the previous release left it: migrations 0001 and 0002 only.
      yield* Migrator.make({})({
        loader: Effect.map(Migrations.loader, (all) => all.filter(([id]) => id <= 2)),
        table: Migrations.migrationsTable
      })
      const token = "as_an-old-token"
      yield* sql`INSERT INTO autosync_tokens ${
        sql.insert({ token_hash: Tokens.hash(token), projects: "[\"p1\"]", created_at: 1000 })
      }`
      const tokens = yield* Tokens.make.pipe(Effect.provide(Layer.orDie(Migrations.layer)))
      const [listed] = yield* tokens.list
      assert.strictEqual(listed.id, Tokens.idOf(token))
      assert.deepStrictEqual(yield* tokens.verify(token), ["p1"])
      assert.strictEqual((yield* tokens.revoke(Tokens.idOf(token))).id, Tokens.idOf(token))
      assert.deepStrictEqual(yield* tokens.list, [])
    }).pipe(
      Effect.provide(
        Layer.unwrapScoped(Effect.map(tempDbFile, (file) => SqliteMutationLog.layerClient({ file }))).pipe(Layer.orDie)
      )
    ))

  it.live("the CLI path: a token created in a file, then a server on that file accepts it", () =>
    Effect.gen(function*() {
      const file = yield* tempDbFile
      const token = yield* Effect.scoped(
        Layer.build(Tokens.layerSqlite({ file })).pipe(
          Effect.flatMap((context) => Context.get(context, Tokens.Tokens).create(["p1"]))
        )
      )
      const url = yield* Layer.build(SyncServer.layerSqlite({ file, port: 0, host: "127.0.0.1", logRequests: false }))
        .pipe(Effect.flatMap((context) => Effect.provide(baseUrl, context)))
      const transport = yield* Layer.build(HttpCloudTransport.layer({ baseUrl: url, token })).pipe(
        Effect.map(Context.get(CloudTransport.CloudTransport))
      )
      assert.deepStrictEqual((yield* transport.push({ clientId: "c1", mutations: [entry(1)] })).acceptedSeqs, [1])
    }).pipe(Effect.scoped))
})

describePg("Tokens in PostgreSQL", () => {
  TokensSuite(
    "PostgreSQL",
    Layer.unwrapScoped(Effect.map(freshSchema, (schema) => Tokens.layerPg({ url: schemaUrl(schema) })))
  )

  it.live("the CLI path: a token created in the database, then a server on it accepts it", () =>
    Effect.gen(function*() {
      const url = schemaUrl(yield* freshSchema)
      const token = yield* Effect.scoped(
        Layer.build(Tokens.layerPg({ url: Redacted.make(url) })).pipe(
          Effect.flatMap((context) => Context.get(context, Tokens.Tokens).create(["p1"]))
        )
      )
      const base = yield* Layer.build(SyncServer.layerPg({ url, port: 0, host: "127.0.0.1", logRequests: false }))
        .pipe(Effect.flatMap((context) => Effect.provide(baseUrl, context)))
      const transport = yield* Layer.build(HttpCloudTransport.layer({ baseUrl: base, token })).pipe(
        Effect.map(Context.get(CloudTransport.CloudTransport))
      )
      assert.deepStrictEqual((yield* transport.push({ clientId: "c1", mutations: [entry(1)] })).acceptedSeqs, [1])
      assert.deepStrictEqual((yield* transport.pull(0, 10)).mutations.map((m) => m.seq), [1])
    }).pipe(Effect.scoped))
})

describe("the server's SQLite file", () => {
  const refused = (file: string) =>
    Effect.flatMap(
      Effect.exit(Effect.scoped(Layer.build(Tokens.layerSqlite({ file })))),
      (exit) =>
        Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag === "ServerFileError"
          ? Effect.succeed(exit.cause.error.message)
          : Effect.dieMessage(`expected a ServerFileError, got ${String(exit)}`)
    )

  it.live("a replica's file, a text file and a missing directory are refused, named and unchanged", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const replica = join(dir, "replica.db")
      yield* Effect.scoped(
        Effect.flatMap(
          Layer.build(SqliteMutationLog.layerClient({ file: replica })),
          (context) => Context.get(context, SqlClient.SqlClient)`CREATE TABLE sync_state (target_key TEXT PRIMARY KEY)`
        )
      ).pipe(Effect.orDie)
      const text = join(dir, "notes.txt")
      writeFileSync(text, "not a database\n")
      const before = [readFileSync(replica), readFileSync(text)]
      // (Beside a WAL database SQLite may add the -wal and -shm a reader needs: not a change.)
      const files = () => readdirSync(dir).filter((f) => !/-(wal|shm)$/.test(f)).sort()
      const filesBefore = files()

      assert.strictEqual(
        yield* refused(replica),
        `"${replica}" is an autosync replica (it has the tables sync_state), not a server database: ` +
          `give the server its own file (the default is ./autosync-server.db)`
      )
      assert.strictEqual(yield* refused(text), `"${text}" is not a SQLite database`)
      assert.match(yield* refused(join(dir, "nope", "server.db")), /the directory .*nope does not exist$/)
      assert.match(yield* refused(dir), /is a directory/)
      assert.deepStrictEqual([readFileSync(replica), readFileSync(text)], before)
      assert.deepStrictEqual(files(), filesBefore)
    }).pipe(Effect.scoped))
})
