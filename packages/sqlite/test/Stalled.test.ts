/**
 * The stall the manager records (`LocalStore.markStalled`) lives in the file: a later process,
 * and a read-only one (`autosync status`), reads it back; a file of the previous migration gains
 * the columns when opened for writing and has no stall.
 */
import { LocalStore, type Status } from "@autosync/core"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { join } from "node:path"
import { SqliteLocalStore, SqliteMigrations } from "../src/index.js"
import { tempDir, withFile } from "./utils.js"

const stalled: Status.Stalled = { kind: "push", since: new Date(1_700_000_000_123), why: "nothing acked" }

const stateOf = (path: string) => withFile(path, Effect.flatMap(LocalStore.LocalStore, (s) => s.getSyncState("cloud")))

describe("SqliteLocalStore.markStalled", () => {
  it.scoped("a recorded stall outlives the process, is read read-only, and is cleared; other fields stay", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "replica.db")
      yield* withFile(
        path,
        Effect.gen(function*() {
          const store = yield* LocalStore.LocalStore
          yield* store.markFailure("cloud", "down", new Date(9000), "transport_failed")
          yield* store.markStalled("cloud", stalled)
          yield* store.markHealthy("cloud") // a healthy cycle is no end of a stall
        })
      )
      const reopened = yield* stateOf(path)
      assert.deepStrictEqual(reopened.stalled, stalled)
      assert.strictEqual(reopened.consecutiveFailures, 0)
      const readonly = yield* Effect.scoped(Effect.flatMap(
        Effect.map(Layer.build(SqliteLocalStore.layerFileReadonly(path)), Context.get(LocalStore.LocalStore)),
        (store) => store.getSyncState("cloud")
      ))
      assert.deepStrictEqual(readonly.stalled, stalled)
      yield* withFile(path, Effect.flatMap(LocalStore.LocalStore, (s) => s.markStalled("cloud", undefined)))
      assert.isUndefined((yield* stateOf(path)).stalled)
    }))

  it.scoped("a file of the previous migration, with a state row, opens with no stall and can record one", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "old.db")
      yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* SqliteClient.make({ filename: path })
        const older = Object.fromEntries(
          Object.entries(SqliteMigrations.migrations).filter(([key]) => !key.endsWith("_stalled"))
        )
        yield* Migrator.make({})({ loader: Migrator.fromRecord(older), table: SqliteMigrations.migrationsTable }).pipe(
          Effect.provideService(SqlClient.SqlClient, client)
        )
        yield* client.unsafe(`INSERT INTO sync_state (target_key, last_pulled_seq, consecutive_failures, last_error,
          updated_at) VALUES ('cloud', 7, 2, 'down', 1000)`)
      })).pipe(Effect.provide(Reactivity.layer), Effect.orDie)
      const state = yield* stateOf(path)
      assert.isUndefined(state.stalled)
      assert.deepStrictEqual([state.lastPulledSeq, state.consecutiveFailures, state.lastError], [7, 2, "down"])
      yield* withFile(path, Effect.flatMap(LocalStore.LocalStore, (s) => s.markStalled("cloud", stalled)))
      assert.deepStrictEqual((yield* stateOf(path)).stalled, stalled)
    }))
})
