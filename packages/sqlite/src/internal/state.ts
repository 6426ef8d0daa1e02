/**
 * The sync state on SQLite: the state row of each target, the failure and stall marks, and the lease (one
 * conditional upsert, with `now` from the caller's `Clock`, never SQL's clock, so at most one
 * owner holds it, across processes).
 *
 * @internal
 */
import { LocalStore } from "@autosync/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { Db } from "./db.js"

const maxDateMillis = 8.64e15

/** @internal */
export const make = (
  db: Db
): Pick<
  LocalStore.LocalStore["Type"],
  "getSyncState" | "acquireLease" | "releaseLease" | "markFailure" | "markHealthy" | "markStalled"
> => {
  const { fail, now, sql, touchState, writeTransaction } = db
  return {
    getSyncState: (targetKey) =>
      Effect.flatMap(now, (at) =>
        Effect.map(
          db.findState(targetKey),
          Option.getOrElse(() => LocalStore.emptyState(targetKey, new Date(at)))
        )).pipe(Effect.mapError(fail("reading the sync state"))),

    acquireLease: Effect.fn("SqliteLocalStore.acquireLease")(function*(targetKey, owner, ttl, leaseNow) {
      const at = yield* now
      const nowMillis = leaseNow.getTime()
      const until = Math.min(nowMillis + Duration.toMillis(Duration.decode(ttl)), maxDateMillis)
      // One statement: taken when free or expired, renewed by its owner, else left alone (and
      // then RETURNING yields no row). SQLite runs it atomically, across processes too.
      const rows = yield* sql`INSERT INTO sync_state (target_key, lease_owner, lease_until, updated_at)
        VALUES (${targetKey}, ${owner}, ${until}, ${at})
        ON CONFLICT (target_key) DO UPDATE
          SET lease_owner = excluded.lease_owner, lease_until = excluded.lease_until, updated_at = excluded.updated_at
          WHERE sync_state.lease_owner = excluded.lease_owner OR sync_state.lease_owner IS NULL
            OR sync_state.lease_until IS NULL OR sync_state.lease_until <= ${nowMillis}
        RETURNING lease_owner`.pipe(Effect.mapError(fail("acquiring the lease")))
      return rows.length > 0
    }),

    releaseLease: Effect.fn("SqliteLocalStore.releaseLease")(function*(targetKey, owner) {
      const at = yield* now
      yield* sql`UPDATE sync_state SET lease_owner = NULL, lease_until = NULL, updated_at = ${at}
        WHERE target_key = ${targetKey} AND lease_owner = ${owner}`.pipe(
        Effect.mapError(fail("releasing the lease"))
      )
    }),

    markFailure: Effect.fn("SqliteLocalStore.markFailure")(
      function*(targetKey, message, backoffUntil, reasonCode, transportIdentity) {
        const at = yield* now
        yield* writeTransaction(Effect.zipRight(
          touchState(targetKey, at),
          sql`UPDATE sync_state SET consecutive_failures = consecutive_failures + 1, last_error = ${message},
          backoff_until = ${backoffUntil.getTime()}, reason_code = ${reasonCode},
          transport_identity = ${transportIdentity ?? null}
          WHERE target_key = ${targetKey}`
        )).pipe(Effect.mapError(fail("recording a failure")))
      }
    ),

    markHealthy: Effect.fn("SqliteLocalStore.markHealthy")(function*(targetKey) {
      const at = yield* now
      yield* writeTransaction(Effect.zipRight(
        touchState(targetKey, at),
        sql`UPDATE sync_state SET consecutive_failures = 0, last_error = NULL, backoff_until = NULL,
          reason_code = NULL, transport_identity = NULL WHERE target_key = ${targetKey}`
      )).pipe(Effect.mapError(fail("recording a success")))
    }),

    markStalled: Effect.fn("SqliteLocalStore.markStalled")(function*(targetKey, stalled) {
      const at = yield* now
      yield* writeTransaction(Effect.zipRight(
        touchState(targetKey, at),
        sql`UPDATE sync_state SET stalled_kind = ${stalled?.kind ?? null},
          stalled_since = ${stalled?.since.getTime() ?? null}, stalled_why = ${stalled?.why ?? null}
          WHERE target_key = ${targetKey}`
      )).pipe(Effect.mapError(fail("recording a stall")))
    })
  }
}
