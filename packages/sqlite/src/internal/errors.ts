import { LocalStore } from "@autosync/core"
import type { SqlError } from "@effect/sql/SqlError"
import * as ParseResult from "effect/ParseResult"

/** @internal */
export const sqliteCode = (cause: unknown): string | undefined => {
  let current: unknown = cause
  for (let i = 0; i < 5 && typeof current === "object" && current !== null; i++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === "string" && code.startsWith("SQLITE_")) return code
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

const messageOf = (cause: unknown): string => {
  let current: unknown = cause
  let message = String(cause)
  for (let i = 0; i < 5 && typeof current === "object" && current !== null; i++) {
    const m = (current as { message?: unknown }).message
    if (typeof m === "string" && m.length > 0) message = m
    current = (current as { cause?: unknown }).cause
  }
  return message
}

/**
 * Classifies a failure of SQLite into a `LocalStoreError` naming the database.
 *
 * @internal
 */
export const fromCause = (label: string, action: string, cause: unknown): LocalStore.LocalStoreError => {
  if (cause instanceof LocalStore.LocalStoreError) return cause
  if (ParseResult.isParseError(cause)) {
    return new LocalStore.LocalStoreError({
      reason: "storage",
      message: `${action}: a row of ${label} could not be decoded: ${ParseResult.TreeFormatter.formatErrorSync(cause)}`,
      cause
    })
  }
  const code = sqliteCode(cause)
  const detail = messageOf(cause)
  if (code === "SQLITE_NOTADB") {
    return new LocalStore.LocalStoreError({
      reason: "incompatible",
      message: `${label} is not a SQLite database (${code}: ${detail})`,
      cause
    })
  }
  if (code?.startsWith("SQLITE_CORRUPT")) {
    return new LocalStore.LocalStoreError({
      reason: "storage",
      message: `${label} is damaged (${code}: ${detail}); ${action} failed`,
      cause
    })
  }
  if (code?.startsWith("SQLITE_READONLY")) {
    return new LocalStore.LocalStoreError({
      reason: "storage",
      message: `${label} is read-only (${code}: ${detail}); ${action} needs to write it`,
      cause
    })
  }
  if (code?.startsWith("SQLITE_CANTOPEN") || (code === undefined && action === "opening")) {
    return new LocalStore.LocalStoreError({
      reason: "storage",
      message: `cannot open ${label} (${code ?? "error"}: ${detail})`,
      cause
    })
  }
  if (code?.startsWith("SQLITE_BUSY") || code?.startsWith("SQLITE_LOCKED")) {
    return new LocalStore.LocalStoreError({
      reason: "storage",
      message: `${label} is locked by another connection (${code}); ${action} gave up`,
      cause
    })
  }
  return new LocalStore.LocalStoreError({
    reason: "storage",
    message: `${action} failed on ${label}${code ? ` (${code})` : ""}: ${detail}`,
    cause
  })
}

/** @internal */
export const fromSqlError =
  (label: string, action: string) =>
  (error: SqlError | ParseResult.ParseError | LocalStore.LocalStoreError): LocalStore.LocalStoreError =>
    fromCause(label, action, error)
