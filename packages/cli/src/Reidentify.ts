/**
 * `autosync reidentify --db FILE`: gives a replica file a new client id, the fix for a copied
 * database file (the server refuses its pushes with 409, status reason `identity_conflict`).
 *
 * Run it with the file's agent stopped: it refuses while an agent holds the file's lease (a
 * running agent would go on pushing under the old id). What it does is `LocalStore.reidentify`:
 * a new client id; the pending rows are pushed again under it (acked rows are shared history and
 * stay as they are); the pull cursor goes back to 0, so the next sync pulls everything the other
 * copy wrote while both shared one identity.
 *
 * @since 0.1.0
 */
import { LocalStore, SyncConfig } from "@autosync/core"
import * as Command from "@effect/cli/Command"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as CliError from "./CliError.js"
import * as Flags from "./Flags.js"
import * as Replica from "./Replica.js"

// The target the agent syncs: its lease tells a running agent.
const targetKey = SyncConfig.defaults.targetKey

const reidentify = (file: string) =>
  Effect.gen(function*() {
    const store = yield* LocalStore.LocalStore
    const state = yield* store.getSyncState(targetKey)
    const now = yield* Clock.currentTimeMillis
    if (state.leaseOwner !== undefined && state.leaseUntil !== undefined && state.leaseUntil.getTime() > now) {
      return yield* CliError.failure(
        `an agent (${state.leaseOwner}) holds the lease of ${file} until ${state.leaseUntil.toISOString()}: stop it, then run reidentify again`
      )
    }
    const result = yield* store.reidentify
    yield* Console.log(
      `reidentified ${file}: client id ${result.previousClientId} → ${result.clientId}; ` +
        `${result.pending} pending rows re-keyed (pushed again under the new id); the next sync pulls from seq 0`
    )
  }).pipe(
    Effect.provide(Replica.layerExisting(file, "write")),
    Effect.mapError((error) =>
      error instanceof CliError.CliError ? error : CliError.failure(`reidentify ${file}: ${error.message}`)
    )
  )

/**
 * The `reidentify` command.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("reidentify", { db: Flags.localDb }, (opts) => reidentify(opts.db)).pipe(
  Command.withDescription(
    "Give a copied replica file a new client id (the fix for reason identity_conflict); stop its agent first."
  )
)
