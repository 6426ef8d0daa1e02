/**
 * What an autosync SQLite database is, told from its table names alone: a server's (its log,
 * tokens or migrations, whatever else it holds), a replica's, or neither. Pure: each package
 * reads the names its own way and asks here, so the two never disagree about a file:
 * `@autosync/sqlite`'s `ReplicaFile` (which refuses to open a server's database as a replica)
 * and `@autosync/server`'s `SqliteMutationLog.checkFile` (which refuses a replica's file).
 *
 * @since 0.1.0
 */
import * as Arr from "effect/Array"
import * as Data from "effect/Data"

/**
 * The tables that mark an autosync server's database (`@autosync/server`'s migrations).
 *
 * @since 0.1.0
 * @category models
 */
export const serverTables: ReadonlyArray<string> = ["autosync_server_migrations", "autosync_log", "autosync_tokens"]

/**
 * The tables that mark an autosync replica (`@autosync/sqlite`'s migrations): any one of them
 * is enough, so a damaged or half-migrated replica is still told apart from a plain database.
 *
 * @since 0.1.0
 * @category models
 */
export const replicaTables: ReadonlyArray<string> = ["sync_state", "sync_mutations", "sync_meta", "autosync_migrations"]

/**
 * The kinds. `found`: the marking tables the database has, in the order of the lists above.
 *
 * @since 0.1.0
 * @category models
 */
export type DatabaseKind = Data.TaggedEnum<{
  /** An autosync server's database, whatever else it holds. */
  Server: { readonly found: ReadonlyArray<string> }
  /** An autosync replica. */
  Replica: { readonly found: ReadonlyArray<string> }
  /** No autosync table (e.g. an application's own database, or a new one). */
  Plain: {}
}>

/**
 * Constructors and matchers of {@link DatabaseKind}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const DatabaseKind = Data.taggedEnum<DatabaseKind>()

/**
 * The kind of a database with these tables. A server's tables win: a server's database that
 * also holds a replica's tables is the server's.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromTables = (tableNames: Iterable<string>): DatabaseKind => {
  const names = new Set(tableNames)
  const server = Arr.filter(serverTables, (t) => names.has(t))
  if (server.length > 0) return DatabaseKind.Server({ found: server })
  const replica = Arr.filter(replicaTables, (t) => names.has(t))
  return replica.length > 0 ? DatabaseKind.Replica({ found: replica }) : DatabaseKind.Plain()
}
