/**
 * The replica's identity on SQLite: `clientId`, created once with the database from SQLite's
 * `randomblob` and stored in `sync_meta`, and `reidentify`, which gives the file a new one.
 *
 * @internal
 */
import { LocalStore, Mutation } from "@autosync/core"
import * as SqlSchema from "@effect/sql/SqlSchema"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { Db } from "./db.js"
import { fromCause } from "./errors.js"
import { MetaRow } from "./rows.js"

/** @internal */
export interface Identity {
  /** The current id; `reidentify` changes it. */
  readonly clientId: string
  readonly reidentify: LocalStore.LocalStore["Type"]["reidentify"]
}

/**
 * Reads the client id, creating it first unless `readonly`. `INSERT ... ON CONFLICT DO NOTHING`
 * then read: of several processes initialising one file at once, the first insert wins and
 * every process reads the same id.
 *
 * @internal
 */
export const make = (db: Db, readonly: boolean): Effect.Effect<Identity, LocalStore.LocalStoreError> =>
  Effect.gen(function*() {
    const { count, fail, label, now, sql, writeTransaction } = db
    let clientId = yield* Effect.gen(function*() {
      if (!readonly) {
        yield* sql`INSERT INTO sync_meta (key, value) VALUES ('client_id', 'replica-' || lower(hex(randomblob(16))))
          ON CONFLICT (key) DO NOTHING`
      }
      const row = yield* SqlSchema.findOne({
        Request: Schema.Void,
        Result: MetaRow,
        execute: () => sql`SELECT value FROM sync_meta WHERE key = 'client_id'`
      })(undefined)
      if (Option.isNone(row)) {
        return yield* new LocalStore.LocalStoreError({ reason: "storage", message: `${label} has no client id` })
      }
      return yield* Schema.decodeUnknown(Mutation.ClientId)(row.value.value)
    }).pipe(Effect.mapError((error) => fromCause(label, "initialising the store", error)))

    // See `LocalStore.reidentify`: a new id, the cursors back to 0, the pulled rows forgotten.
    const reidentify = Effect.fn("SqliteLocalStore.reidentify")(function*() {
      const at = yield* now
      const result = yield* writeTransaction(Effect.gen(function*() {
        const readId = sql`SELECT value FROM sync_meta WHERE key = 'client_id'`.pipe(
          Effect.flatMap(Schema.decodeUnknown(Schema.Array(MetaRow))),
          Effect.map((rows) => rows[0]?.value ?? "")
        )
        const previousClientId = yield* readId
        yield* sql`UPDATE sync_meta SET value = 'replica-' || lower(hex(randomblob(16))) WHERE key = 'client_id'`
        const fresh = yield* readId
        yield* sql`DELETE FROM sync_mutations WHERE source = 'remote'`
        yield* sql`UPDATE sync_state SET last_pulled_seq = 0, consecutive_failures = 0, backoff_until = NULL,
          last_error = NULL, reason_code = NULL, transport_identity = NULL, updated_at = ${at}`
        const pending = yield* count(sql`SELECT COUNT(*) AS n FROM sync_mutations
          WHERE source = 'local' AND acked_at IS NULL`)
        return { previousClientId, clientId: fresh, pending }
      })).pipe(Effect.mapError(fail("giving the replica a new identity")))
      const decoded = yield* Schema.decodeUnknown(Mutation.ClientId)(result.clientId).pipe(
        Effect.mapError((error) => fromCause(label, "giving the replica a new identity", error))
      )
      clientId = decoded
      return { ...result, clientId: decoded }
    })

    return {
      get clientId() {
        return clientId
      },
      reidentify: reidentify()
    }
  })
