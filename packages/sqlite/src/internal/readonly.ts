import { LocalStore } from "@autosync/core"
import * as Effect from "effect/Effect"
import { sqliteCode } from "./errors.js"

const readonlyError = (label: string, method: string) => (error: LocalStore.LocalStoreError) =>
  sqliteCode(error.cause)?.startsWith("SQLITE_READONLY")
    ? new LocalStore.LocalStoreError({
      reason: "storage",
      message:
        `${label} was opened read-only: ${method} needs a writable store (SqliteLocalStore.layerFile); nothing was written`,
      cause: error.cause
    })
    : error

/**
 * A store on a read-only connection, whose writes fail with a message saying so (SQLite itself
 * refuses every write on such a connection; this only names why). Every member is wrapped, so
 * a method added to `LocalStore` later is covered too.
 *
 * @internal
 */
export const guard = (store: LocalStore.LocalStore["Type"], label: string): LocalStore.LocalStore["Type"] => {
  const wrapped: Record<string, unknown> = {}
  for (const [key, member] of Object.entries(store)) {
    wrapped[key] = Effect.isEffect(member)
      ? Effect.mapError(member as Effect.Effect<unknown, LocalStore.LocalStoreError>, readonlyError(label, key))
      : typeof member === "function"
      ? (...args: Array<unknown>) => {
        const result = (member as (...args: Array<unknown>) => unknown)(...args)
        return Effect.isEffect(result)
          ? Effect.mapError(result as Effect.Effect<unknown, LocalStore.LocalStoreError>, readonlyError(label, key))
          : result
      }
      : member
  }
  return wrapped as unknown as LocalStore.LocalStore["Type"]
}
