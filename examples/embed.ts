/**
 * Embedding autosync in an Effect application: a replica in a SQLite file, synced through a
 * server in the background. Each run writes a note keyed by its file's name, syncs once and
 * prints every note the replica has, so a second run on another file shows the first one's note.
 *
 * With a server running and a token for the project "notes" (README, "Running a server and
 * agents"):
 *
 *   export AUTOSYNC_SERVER_URL=http://127.0.0.1:8787 AUTOSYNC_TOKEN=<the token>
 *   pnpm example ./laptop.db
 *   pnpm example ./phone.db      # lists laptop.db's note too
 *
 * (`pnpm example` is `tsx --conditions=source examples/embed.ts`: the workspace's packages from
 * their TypeScript sources, no build needed. test/Packaging.test.ts runs this file in an
 * application that installed the packed packages.)
 */
import { DirtySignal, LocalStore, SyncManager } from "@autosync/core"
import { HttpCloudTransport } from "@autosync/http"
import { Documents, SqliteLocalStore } from "@autosync/sqlite"
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { basename } from "node:path"

const file = process.argv[2] ?? "./app.db"

const program = Effect.gen(function*() {
  yield* (yield* LocalStore.LocalStore).enroll("notes") // only enrolled projects are pushed
  const docs = yield* Documents.Documents
  yield* docs.put("notes", "note", basename(file), { title: `Hello from ${basename(file)}` })
  // The manager already syncs in the background; syncNow runs one cycle (push, then pull) now.
  const status = yield* (yield* SyncManager.SyncManager).syncNow
  if (status.lastError !== undefined) return yield* Effect.fail(`sync failed: ${status.lastError}`)
  for (const note of yield* docs.list("notes")) console.log(note.entityKey, JSON.stringify(note.value))
})

// Documents and the manager share one store, transport and DirtySignal: every write wakes the
// manager. Closing the layer (when the program ends) stops the manager and releases its lease.
const AppLayer = Layer.mergeAll(Documents.layer, SyncManager.layerConfig()).pipe(
  Layer.provideMerge(SqliteLocalStore.layerFile(file)),
  Layer.provideMerge(HttpCloudTransport.layerConfig), // AUTOSYNC_SERVER_URL, AUTOSYNC_TOKEN
  Layer.provideMerge(DirtySignal.layer)
)

program.pipe(Effect.provide(AppLayer), NodeRuntime.runMain)
