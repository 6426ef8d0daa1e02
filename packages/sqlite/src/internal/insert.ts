/**
 * Multi-row inserts without a statement compiled per row: `sql.insert(rows)` builds every row's
 * placeholders and the SQL text anew on each call (about 1 µs per row of a 9-column table, as
 * much as SQLite's own insert). Here the text is built from a row's placeholders repeated (the
 * full chunk's once), and the values are bound flat, in column order, as the caller laid them out.
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"

/** Rows per statement: with up to 32 columns (every insert here has fewer), under SQLite's 32,766 bound variables. */
export const rowsPerStatement = 1000

/**
 * A multi-row statement: `head` (`INSERT INTO t (a, b)`), `width` values per row, then `tail`
 * (an `ON CONFLICT` clause, or nothing).
 *
 * @internal
 */
export interface Insert {
  readonly width: number
  /** The statement's text for `rows` rows. */
  readonly text: (rows: number) => string
}

/** @internal */
export const make = (head: string, width: number, tail = ""): Insert => {
  const row = `(${Array.from({ length: width }, () => "?").join(",")})`
  const build = (rows: number) =>
    `${head} VALUES ${Array.from({ length: rows }, () => row).join(",")}${tail === "" ? "" : ` ${tail}`}`
  // Only the full chunk's text is kept: other sizes are cheap to build and would pile up.
  const full = build(rowsPerStatement)
  return { width, text: (rows) => rows === rowsPerStatement ? full : build(rows) }
}

/**
 * Runs `insert` over `values` (the rows' values one after another, `insert.width` per row), in
 * statements of at most {@link rowsPerStatement} rows.
 *
 * @internal
 */
export const run = (
  sql: SqlClient.SqlClient,
  insert: Insert,
  values: ReadonlyArray<unknown>
): Effect.Effect<void, SqlError> =>
  Effect.suspend(() => {
    const rows = values.length / insert.width
    if (rows === 0) return Effect.void
    if (rows <= rowsPerStatement) return Effect.asVoid(sql.unsafe(insert.text(rows), values))
    const chunk = rowsPerStatement * insert.width
    const statements: Array<Effect.Effect<unknown, SqlError>> = []
    for (let from = 0; from < values.length; from += chunk) {
      const part = values.slice(from, from + chunk)
      statements.push(sql.unsafe(insert.text(part.length / insert.width), part))
    }
    return Effect.all(statements, { discard: true })
  })
