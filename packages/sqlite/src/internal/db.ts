/**
 * What every part of the SQLite store shares: the client, the database's label for messages,
 * the appliers, and the few statements all of them use (the write transaction, the state row).
 *
 * @internal
 */
import { LocalStore } from "@autosync/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as SqlSchema from "@effect/sql/SqlSchema"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Applier from "../Applier.js"
import { fromSqlError } from "./errors.js"
import { CountRow, StateFromRow } from "./rows.js"

/** @internal */
export interface Db {
  readonly sql: SqlClient.SqlClient
  /** The database, as messages name it. */
  readonly label: string
  readonly appliers: Applier.Registry
  /** Maps a failure of `action` to a `LocalStoreError` naming the database. */
  readonly fail: (
    action: string
  ) => (error: SqlError | ParseResult.ParseError | LocalStore.LocalStoreError) => LocalStore.LocalStoreError
  readonly now: Effect.Effect<number>
  /**
   * A write transaction. Its first statement is a write (a no-op UPDATE) so that SQLite takes
   * the write lock before the transaction reads anything, waiting on the busy timeout; a
   * deferred transaction that read first could otherwise fail with SQLITE_BUSY_SNAPSHOT when
   * another process committed in between.
   */
  readonly writeTransaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  /** Creates the target's state row when missing and stamps `updated_at`. */
  readonly touchState: (targetKey: string, at: number) => Effect.Effect<unknown, SqlError>
  readonly findState: (
    targetKey: string
  ) => Effect.Effect<Option.Option<typeof StateFromRow.Type>, SqlError | ParseResult.ParseError>
  /** The target's cursor: the highest seq applied or passed over. */
  readonly lastPulledSeq: (targetKey: string) => Effect.Effect<number, SqlError | ParseResult.ParseError>
  /**
   * After a write that pruned rows (outside its transaction): one bounded step of incremental
   * vacuum when the free pages are many, so the file gives back what the journal no longer
   * holds. Free pages are reused by later writes, so a few are left alone. Best effort: a busy
   * file or a failure leaves the space for the next step.
   */
  readonly reclaim: Effect.Effect<void>
  /** The `n` of a `SELECT ... AS n` (0 without a row). */
  readonly count: (
    query: Effect.Effect<ReadonlyArray<unknown>, SqlError>
  ) => Effect.Effect<number, SqlError | ParseResult.ParseError>
}

/** Free pages below which nothing is reclaimed (they are reused by later writes). */
const reclaimMinPages = 256
/** The pages one step of {@link Db.reclaim} gives back at most (2 MiB at 4 KiB pages). */
const reclaimStepPages = 512

/**
 * Gives back up to `pages` free pages, in one transaction (on a file in `auto_vacuum =
 * INCREMENTAL`; a no-op otherwise). A prepared `PRAGMA incremental_vacuum` frees one page per
 * step, and the driver steps a statement without results once, so it runs once per page:
 * inside one transaction, that is one commit (one fsync) for the lot. The steps go straight to
 * the transaction's connection: as statements, each would cost a span and a scope (a third of
 * an ack's time went there).
 *
 * @internal
 */
export const incrementalVacuum = (sql: SqlClient.SqlClient, pages: number): Effect.Effect<void, SqlError> => {
  const steps = Math.max(0, Math.floor(pages) - 1)
  const step = "PRAGMA incremental_vacuum(1)"
  return sql.withTransaction(
    Effect.flatMap(
      Effect.serviceOption(SqlClient.TransactionConnection),
      Option.match({
        onNone: () => Effect.repeatN(sql.unsafe(step), steps),
        onSome: ([connection]) => Effect.repeatN(connection.executeRaw(step, []), steps)
      })
    )
  ).pipe(Effect.asVoid)
}

const decodeCounts = Schema.decodeUnknown(Schema.Array(CountRow))

/** @internal */
export const make = (label: string): Effect.Effect<Db, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const appliers = yield* Applier.Applier
    const findState = SqlSchema.findOne({
      Request: Schema.String,
      Result: StateFromRow,
      execute: (targetKey) => sql`SELECT * FROM sync_state WHERE target_key = ${targetKey}`
    })
    const count = (query: Effect.Effect<ReadonlyArray<unknown>, SqlError>) =>
      Effect.map(
        Effect.flatMap(query, decodeCounts),
        (rows) => rows[0]?.n ?? 0
      )
    return {
      sql,
      label,
      reclaim: Effect.gen(function*() {
        const free = yield* count(sql`SELECT freelist_count AS n FROM pragma_freelist_count()`)
        if (free < reclaimMinPages) return
        const pages = yield* count(sql`SELECT page_count AS n FROM pragma_page_count()`)
        if (free * 4 < pages) return
        yield* incrementalVacuum(sql, reclaimStepPages)
      }).pipe(Effect.ignore),
      appliers,
      fail: (action) => fromSqlError(label, action),
      now: Clock.currentTimeMillis,
      writeTransaction: (effect) =>
        sql.withTransaction(
          Effect.zipRight(sql`UPDATE sync_meta SET value = value WHERE key = 'write_lock'`, effect)
        ),
      touchState: (targetKey, at) =>
        sql`INSERT INTO sync_state (target_key, updated_at) VALUES (${targetKey}, ${at})
          ON CONFLICT (target_key) DO UPDATE SET updated_at = excluded.updated_at`,
      findState,
      lastPulledSeq: (targetKey) =>
        Effect.map(findState(targetKey), Option.match({ onNone: () => 0, onSome: (s) => s.lastPulledSeq })),
      count
    }
  })
