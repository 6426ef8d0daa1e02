/**
 * The schema of an autosync database, as `@effect/sql` migrations.
 *
 * Migrations are recorded in their own table, `autosync_migrations`, so they never collide with
 * the application's own migrations in the same file (which use `effect_sql_migrations` by
 * default). `sync_meta` stores the schema version this file was last written with: a file from
 * a newer autosync is refused with a `LocalStoreError` (reason `"incompatible"`) before
 * anything in it is changed.
 *
 * Tables:
 * - `sync_meta` — `key`/`value` pairs: `schema_version`, `client_id`, `last_local_seq` (the
 *   last journal seq given out: seqs are never reused, also after their rows were pruned).
 * - `sync_state` — one row per target: cursors, failures, backoff, the lease, and the stall the
 *   manager last recorded (`stalled_kind`, `stalled_since`, `stalled_why`; NULL when none).
 * - `sync_mutations` — the journal, which keeps only what sync still needs: pending local rows
 *   (`source = 'local'`, `seq` = the journal seq, the `client_seq` they are pushed with), deleted
 *   when acked; and pulled rows kept aside (`source = 'remote'`, `seq` = the server seq,
 *   `status = 'kept_aside'`), deleted when an ack settles them. (Files of migration 3 and
 *   before also held acked and applied rows; migration 4 pruned them.)
 * - `sync_key_facts` — per target and key, `own_acked_seq`: the server seq of the replica's
 *   newest acked write while the cursor is below it (`Merge.keepsOwnAckedSeq`).
 * - `sync_enrolled_projects` — the projects whose rows are pushed.
 * - `sync_documents` — the built-in document table; `value` is JSON text.
 * - `sync_dead_letters` — pulled mutations that could not be applied, with the reason.
 *
 * @since 0.1.0
 */
import { LocalStore } from "@autosync/core"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { fromCause } from "./internal/errors.js"

/**
 * The schema version this code writes and understands. Stored in `sync_meta`.
 *
 * @since 0.1.0
 * @category models
 */
export const schemaVersion = 1

/**
 * The table in which `@effect/sql`'s `Migrator` records the migrations it ran.
 *
 * @since 0.1.0
 * @category models
 */
export const migrationsTable = "autosync_migrations"

const init = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE sync_meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
  ) WITHOUT ROWID`
  yield* sql`CREATE TABLE sync_state (
    target_key TEXT PRIMARY KEY NOT NULL,
    last_enqueued_seq INTEGER NOT NULL DEFAULT 0,
    last_acked_seq INTEGER NOT NULL DEFAULT 0,
    last_pulled_seq INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    backoff_until INTEGER,
    last_error TEXT,
    reason_code TEXT,
    lease_owner TEXT,
    lease_until INTEGER,
    updated_at INTEGER NOT NULL
  )`
  yield* sql`CREATE TABLE sync_mutations (
    id INTEGER PRIMARY KEY,
    target_key TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('local', 'remote')),
    seq INTEGER NOT NULL,
    project TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    op TEXT NOT NULL,
    payload TEXT,
    occurred_at INTEGER NOT NULL,
    acked_at INTEGER,
    server_seq INTEGER,
    status TEXT CHECK (status IS NULL OR status IN ('applied', 'kept_aside', 'discarded', 'dead_letter'))
  )`
  yield* sql`CREATE UNIQUE INDEX sync_mutations_local_seq ON sync_mutations (seq) WHERE source = 'local'`
  yield* sql`CREATE UNIQUE INDEX sync_mutations_remote_seq ON sync_mutations (target_key, seq) WHERE source = 'remote'`
  yield* sql`CREATE INDEX sync_mutations_pending ON sync_mutations (target_key, seq)
    WHERE source = 'local' AND acked_at IS NULL`
  yield* sql`CREATE INDEX sync_mutations_pending_key ON sync_mutations (target_key, project, entity, entity_key)
    WHERE source = 'local' AND acked_at IS NULL`
  yield* sql`CREATE INDEX sync_mutations_kept_aside ON sync_mutations (target_key, project, entity, entity_key, seq)
    WHERE source = 'remote' AND status = 'kept_aside'`
  yield* sql`CREATE TABLE sync_enrolled_projects (
    project TEXT PRIMARY KEY NOT NULL,
    enrolled_at INTEGER NOT NULL
  ) WITHOUT ROWID`
  yield* sql`CREATE TABLE sync_documents (
    project TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project, entity, entity_key)
  ) WITHOUT ROWID`
  yield* sql`CREATE TABLE sync_dead_letters (
    id INTEGER PRIMARY KEY,
    target_key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    reason TEXT NOT NULL,
    mutation TEXT NOT NULL,
    created_at INTEGER NOT NULL
  )`
  yield* sql`INSERT INTO sync_meta (key, value) VALUES ('schema_version', ${String(schemaVersion)})`
})

// Pulls leave out the replica's own writes, so applying a pulled mutation asks whether one of
// ours, acked with a higher server seq, already decided its key: found by key, then server seq.
const ownServerSeqIndex = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE INDEX IF NOT EXISTS sync_mutations_local_server_seq
    ON sync_mutations (target_key, entity_key, server_seq)
    WHERE source = 'local' AND server_seq IS NOT NULL`
})

// Where and as whom a failure was met (`CloudTransport.identity`): a persisted retry deadline is
// honoured only by a transport of the same identity.
const transportIdentity = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE sync_state ADD COLUMN transport_identity TEXT`
})

/**
 * The bounded journal: the per-key facts the convergence rule needs move to `sync_key_facts`
 * (filled from the old acked rows), the last journal seq to `sync_meta`, and the rows sync no
 * longer needs are pruned. The space they took is given back by the incremental vacuum
 * ({@link run} switches the file to it once).
 */
const boundedJournal = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE sync_key_facts (
    target_key TEXT NOT NULL,
    project TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    own_acked_seq INTEGER NOT NULL,
    PRIMARY KEY (target_key, project, entity, entity_key)
  ) WITHOUT ROWID`
  yield* sql`CREATE INDEX sync_key_facts_seq ON sync_key_facts (target_key, own_acked_seq)`
  yield* sql`INSERT INTO sync_meta (key, value)
    SELECT 'last_local_seq', CAST(COALESCE(MAX(seq), 0) AS TEXT) FROM sync_mutations WHERE source = 'local'`
  yield* sql`INSERT INTO sync_key_facts (target_key, project, entity, entity_key, own_acked_seq)
    SELECT m.target_key, m.project, m.entity, m.entity_key, MAX(m.server_seq)
    FROM sync_mutations m LEFT JOIN sync_state s ON s.target_key = m.target_key
    WHERE m.source = 'local' AND m.acked_at IS NOT NULL AND m.server_seq IS NOT NULL
    GROUP BY m.target_key, m.project, m.entity, m.entity_key
    HAVING MAX(m.server_seq) > COALESCE(MAX(s.last_pulled_seq), 0)`
  yield* sql`DELETE FROM sync_mutations
    WHERE (source = 'local' AND acked_at IS NOT NULL) OR (source = 'remote' AND status IS NOT 'kept_aside')`
  yield* sql`DROP INDEX IF EXISTS sync_mutations_local_server_seq`
})

// The stall the manager's watchdog sees, kept with the sync state so that `autosync status`, which
// reads the file alone, shows it. NULL (no stall) in every row of an older file.
const stalled = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE sync_state ADD COLUMN stalled_kind TEXT`
  yield* sql`ALTER TABLE sync_state ADD COLUMN stalled_since INTEGER`
  yield* sql`ALTER TABLE sync_state ADD COLUMN stalled_why TEXT`
})

/**
 * The migrations, keyed `<id>_<name>` as `Migrator.fromRecord` expects.
 *
 * @since 0.1.0
 * @category models
 */
export const migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> = {
  "0001_init": init,
  "0002_own_server_seq_index": ownServerSeqIndex,
  "0003_transport_identity": transportIdentity,
  "0004_bounded_journal": boundedJournal,
  "0005_stalled": stalled
}

/**
 * The loader of {@link migrations}.
 *
 * @since 0.1.0
 * @category models
 */
export const loader: Migrator.Loader = Migrator.fromRecord(migrations)

const latestMigrationId = Math.max(...Object.keys(migrations).map((key) => Number(key.split("_")[0])))

/**
 * The id of the last of {@link migrations}: a replica migrated this far has every table and
 * column this version reads.
 *
 * @since 0.1.0
 * @category models
 */
export const latestMigration: number = latestMigrationId

const TableNames = Schema.Array(Schema.Struct({ name: Schema.String }))
const VersionRows = Schema.Array(Schema.Struct({ value: Schema.NumberFromString }))
const MigrationRows = Schema.Array(Schema.Struct({ id: Schema.NullOr(Schema.Number) }))

/**
 * Fails with reason `"incompatible"` when the database was written by a newer schema than
 * {@link schemaVersion}; changes nothing.
 *
 * @since 0.1.0
 * @category migrations
 */
export const checkVersion = (label: string): Effect.Effect<void, LocalStore.LocalStoreError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const tables =
      yield* sql`SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (${"sync_meta"}, ${migrationsTable})`
        .pipe(Effect.flatMap(Schema.decodeUnknown(TableNames)))
    const names = new Set(tables.map((t) => t.name))
    if (names.has("sync_meta")) {
      const rows = yield* sql`SELECT value FROM sync_meta WHERE key = 'schema_version'`.pipe(
        Effect.flatMap(Schema.decodeUnknown(VersionRows))
      )
      const stored = rows[0]?.value
      if (stored !== undefined && stored > schemaVersion) {
        return yield* new LocalStore.LocalStoreError({
          reason: "incompatible",
          message:
            `${label} was written by a newer autosync (schema version ${stored}; this version knows up to ${schemaVersion}); upgrade @autosync/sqlite to open it`
        })
      }
    }
    if (names.has(migrationsTable)) {
      const rows = yield* sql`SELECT MAX(migration_id) AS id FROM ${sql(migrationsTable)}`.pipe(
        Effect.flatMap(Schema.decodeUnknown(MigrationRows))
      )
      const latest = rows[0]?.id ?? 0
      if (latest > latestMigrationId) {
        return yield* new LocalStore.LocalStoreError({
          reason: "incompatible",
          message:
            `${label} was migrated by a newer autosync (migration ${latest}; this version knows up to ${latestMigrationId}); upgrade @autosync/sqlite to open it`
        })
      }
    }
  }).pipe(Effect.mapError((error) => fromCause(label, "checking the schema version", error)))

/**
 * For a read-only open, which runs no migrations: fails with reason `"incompatible"` when the
 * database was written by a newer autosync ({@link checkVersion}) or was last migrated by an
 * older one (`migration` below {@link latestMigration}: its tables may lack what this version
 * reads), with a message saying how to migrate it. Reads only.
 *
 * @since 0.1.0
 * @category migrations
 */
export const checkReadable = (
  label: string,
  migration: number
): Effect.Effect<void, LocalStore.LocalStoreError, SqlClient.SqlClient> =>
  Effect.zipRight(
    checkVersion(label),
    migration < latestMigrationId
      ? new LocalStore.LocalStoreError({
        reason: "incompatible",
        message:
          `${label} is a replica of an older autosync (migration ${migration}; this version reads migration ${latestMigrationId}); opening it read-only does not migrate it: run \`autosync init --db\` on it (or start its agent) once, then try again`
      })
      : Effect.void
  )

/**
 * Runs `effect` in a transaction whose first statement is a write to the migrations table (the
 * same DDL as the `Migrator`'s), so the write lock is taken before anything is read.
 */
const lockedTransaction = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.zipRight(
      sql`CREATE TABLE IF NOT EXISTS ${sql(migrationsTable)} (
        migration_id integer PRIMARY KEY NOT NULL,
        created_at datetime NOT NULL DEFAULT current_timestamp,
        name VARCHAR(255) NOT NULL
      )`,
      sql.withTransaction(
        Effect.zipRight(sql`UPDATE ${sql(migrationsTable)} SET name = name WHERE migration_id = -1`, effect)
      )
    ))

/**
 * Checks the version, then runs the pending migrations in one transaction. Safe to run from
 * several processes at once: the transaction takes SQLite's write lock before it reads which
 * migrations ran (waiting on the busy timeout), so the second process waits for the first and
 * then finds nothing left to do.
 *
 * (`Migrator` alone is not enough here: its deferred transaction reads first, and a process
 * that loses the race for the write lock gets SQLITE_BUSY at once, which the `Migrator` takes as
 * "already running" and returns before the winner committed its tables.)
 *
 * @since 0.1.0
 * @category migrations
 */
export const run = (
  label = "the SQLite database"
): Effect.Effect<ReadonlyArray<readonly [id: number, name: string]>, LocalStore.LocalStoreError, SqlClient.SqlClient> =>
  Effect.zipRight(
    checkVersion(label),
    lockedTransaction(Migrator.make({})({ loader, table: migrationsTable })).pipe(
      // The Migrator turns a failing migration into a defect; it is a storage failure to us.
      Effect.catchAllDefect((defect) =>
        defect instanceof Migrator.MigrationError ? Effect.fail(defect) : Effect.die(defect)
      ),
      Effect.mapError((error) =>
        error instanceof Migrator.MigrationError && error.cause !== undefined
          ? fromCause(label, `migrating (${error.message})`, error.cause)
          : fromCause(label, "migrating", error)
      ),
      Effect.tap(() => ensureIncrementalVacuum(label))
    )
  )

const AutoVacuumRows = Schema.Array(Schema.Struct({ auto_vacuum: Schema.Number }))

/**
 * Switches the file to `auto_vacuum = INCREMENTAL` (2) unless it is already, so pruned journal
 * rows give their space back in bounded steps (`SqliteLocalStore.reclaimSpace`). On a file that
 * has tables, the switch takes a `VACUUM` (a full rewrite): once per file, as the first open by
 * this version migrates it. `VACUUM` cannot run inside a transaction, hence outside the
 * migrations' one.
 *
 * @since 0.1.0
 * @category migrations
 */
export const ensureIncrementalVacuum = (
  label = "the SQLite database"
): Effect.Effect<void, LocalStore.LocalStoreError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const mode = yield* sql`SELECT auto_vacuum FROM pragma_auto_vacuum()`.pipe(
      Effect.flatMap(Schema.decodeUnknown(AutoVacuumRows))
    )
    if (mode[0]?.auto_vacuum === 2) return
    yield* sql.unsafe("PRAGMA auto_vacuum = INCREMENTAL")
    yield* sql.unsafe("VACUUM")
  }).pipe(Effect.mapError((error) => fromCause(label, "switching to incremental vacuum", error)))

/**
 * Runs the migrations when built.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<never, LocalStore.LocalStoreError, SqlClient.SqlClient> = Layer.effectDiscard(run())
