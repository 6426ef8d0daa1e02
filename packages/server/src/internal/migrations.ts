/**
 * The server's tables (the mutation log, its compaction's bookkeeping, the tokens and the connected clients), one migration set for SQLite and
 * PostgreSQL, run with `@effect/sql`'s `Migrator`.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** @internal */
export const migrationsTable = "autosync_server_migrations"

/** @internal */
export const loader = Migrator.fromRecord({
  "0001_mutation_log": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // SQLite: INTEGER PRIMARY KEY is the rowid itself. Seqs are assigned explicitly either way.
    const seqType = sql.onDialectOrElse({ sqlite: () => "INTEGER", orElse: () => "BIGINT" })
    yield* sql`CREATE TABLE autosync_log (
      seq ${sql.literal(seqType)} PRIMARY KEY,
      client_id TEXT NOT NULL,
      client_seq BIGINT NOT NULL,
      project TEXT NOT NULL,
      entity TEXT NOT NULL,
      entity_key TEXT NOT NULL,
      op TEXT NOT NULL,
      payload TEXT NOT NULL,
      occurred_at BIGINT NOT NULL,
      UNIQUE (client_id, client_seq)
    )`
    yield* sql`CREATE INDEX autosync_log_project_seq ON autosync_log (project, seq)`
  }),
  "0002_tokens": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE autosync_tokens (
      token_hash TEXT PRIMARY KEY,
      projects TEXT NOT NULL,
      created_at BIGINT NOT NULL
    )`
  }),
  // Tokens get a public id (for `token list` / `token revoke`) and the time they were last used.
  // The id is derived from the stored hash (see Tokens.idOf), so existing rows get theirs here.
  "0003_token_ids": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE autosync_tokens ADD COLUMN id TEXT`
    yield* sql`ALTER TABLE autosync_tokens ADD COLUMN last_used_at BIGINT`
    yield* sql`UPDATE autosync_tokens SET id = 'tok_' || substr(token_hash, 1, 12)`
    yield* sql`CREATE UNIQUE INDEX autosync_tokens_id ON autosync_tokens (id)`
  }),
  // Compaction (see LogRules): the index that finds a row's newer twin, the identities of
  // compacted rows (for retries), each client's acked watermark, and the last compaction.
  "0004_compaction": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE INDEX autosync_log_key_seq ON autosync_log (project, entity, entity_key, seq)`
    yield* sql`CREATE TABLE autosync_identities (
      client_id TEXT NOT NULL,
      client_seq BIGINT NOT NULL,
      seq BIGINT NOT NULL,
      project TEXT NOT NULL,
      entity TEXT NOT NULL,
      entity_key TEXT NOT NULL,
      op TEXT NOT NULL,
      payload TEXT NOT NULL,
      PRIMARY KEY (client_id, client_seq)
    )`
    yield* sql`CREATE TABLE autosync_watermarks (
      client_id TEXT PRIMARY KEY,
      acked_through BIGINT NOT NULL
    )`
    yield* sql`CREATE TABLE autosync_compaction (
      id INTEGER PRIMARY KEY,
      at BIGINT NOT NULL,
      removed BIGINT NOT NULL,
      duration_ms BIGINT NOT NULL
    )`
  }),
  // Admin tokens (they may read /v1/admin/*), and who is connected: one row per client id, written
  // in batches by Clients.ts (never one write per request).
  "0005_admin_clients": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE autosync_tokens ADD COLUMN admin INTEGER NOT NULL DEFAULT 0`
    yield* sql`CREATE TABLE autosync_clients (
      client_id TEXT PRIMARY KEY,
      token_id TEXT,
      last_push_at BIGINT,
      last_pull_at BIGINT,
      cursor_seq BIGINT,
      pushed BIGINT NOT NULL DEFAULT 0,
      pulled BIGINT NOT NULL DEFAULT 0
    )`
  })
})

const run = Migrator.make({})

/**
 * Brings the database up to date. Safe to run from several processes at once: on PostgreSQL the
 * migrations table is created under an advisory lock and the Migrator locks it while it runs.
 *
 * @internal
 */
export const migrate: Effect.Effect<void, Migrator.MigrationError | SqlError, SqlClient.SqlClient> = Effect.gen(
  function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.onDialectOrElse({
      pg: () =>
        sql.withTransaction(
          sql`SELECT pg_advisory_xact_lock(hashtext(${"autosync_server_migrations:"}::text || coalesce(current_schema(), '')))`
            .pipe(
              Effect.zipRight(sql`CREATE TABLE IF NOT EXISTS ${sql(migrationsTable)} (
                migration_id integer primary key,
                created_at timestamp with time zone not null default now(),
                name text not null
              )`)
            )
        ),
      orElse: () => Effect.void
    })
    yield* run({ loader, table: migrationsTable })
  }
)

/**
 * Runs the migrations once per layer build (layers are memoised by reference).
 *
 * @internal
 */
export const layer: Layer.Layer<never, Migrator.MigrationError | SqlError, SqlClient.SqlClient> = Layer
  .effectDiscard(migrate)
