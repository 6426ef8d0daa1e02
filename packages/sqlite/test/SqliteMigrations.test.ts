import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { join } from "node:path"
import { SqliteMigrations } from "../src/index.js"
import { tempDir } from "./utils.js"

describe("SqliteMigrations.run", () => {
  it.scoped("a migration that fails is a typed storage error naming the migration, not a defect", () =>
    Effect.gen(function*() {
      const filename = join(yield* tempDir, "clash.db")
      const error = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // A table of the first migration already there: its CREATE TABLE fails.
        yield* sql`CREATE TABLE sync_state (x integer)`
        return yield* Effect.flip(SqliteMigrations.run("clash.db"))
      }).pipe(Effect.provide(SqliteClient.layer({ filename })))
      assert.strictEqual(error._tag, "LocalStoreError")
      assert.include(error.message, "clash.db")
      assert.include(error.message, "migrating (")
      assert.include(error.message, "init")
    }))
})
