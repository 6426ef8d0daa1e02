import type { LocalStore } from "@autosync/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { sqliteCode } from "./errors.js"

/**
 * Whether a failure is SQLite's "another connection holds the lock" (`SQLITE_BUSY*`,
 * `SQLITE_LOCKED*`).
 *
 * @internal
 */
export const isBusy = (error: LocalStore.LocalStoreError): boolean => {
  const code = sqliteCode(error.cause)
  return code !== undefined && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"))
}

/**
 * Retries `effect` while it fails because another connection holds the lock, for up to
 * `within` (the busy timeout).
 *
 * SQLite's busy handler does not cover every wait: to avoid a deadlock it returns SQLITE_BUSY
 * at once when a connection inside a read wants to write while another one is writing, and a
 * WAL snapshot that went stale fails without waiting. Several processes opening a new file at
 * once (switching it to WAL, migrating it, creating its client id) meet exactly these cases on a
 * busy machine; every step there is idempotent, so trying again is always right.
 *
 * @internal
 */
export const retryWhileBusy = <A, R>(
  effect: Effect.Effect<A, LocalStore.LocalStoreError, R>,
  within: Duration.DurationInput
): Effect.Effect<A, LocalStore.LocalStoreError, R> =>
  Effect.retry(effect, {
    schedule: Schedule.exponential("5 millis", 2).pipe(
      Schedule.union(Schedule.spaced("100 millis")),
      Schedule.jittered,
      Schedule.upTo(Duration.decode(within))
    ),
    while: isBusy
  })
