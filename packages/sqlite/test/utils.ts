import type { LocalStore } from "@autosync/core"
import type * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import type { Scope } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqliteLocalStore } from "../src/index.js"

/** A fresh temporary directory, removed with the scope. */
export const tempDir: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "autosync-sqlite-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** A SQLite store on a new file in a fresh temporary directory. */
export const layerTempFile: Layer.Layer<
  LocalStore.LocalStore | SqlClient.SqlClient | SqliteClient.SqliteClient,
  LocalStore.LocalStoreError
> = Layer.unwrapScoped(Effect.map(tempDir, (dir) => SqliteLocalStore.layerFile(join(dir, "store.db"))))

/** Runs `effect` against a store opened on `path`, closing it afterwards. */
export const withFile = <A, E, R>(path: string, effect: Effect.Effect<A, E, R>) =>
  Effect.provide(effect, SqliteLocalStore.layerFile(path))
