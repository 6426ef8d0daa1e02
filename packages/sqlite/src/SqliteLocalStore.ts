/**
 * `LocalStore` on SQLite, with the same semantics as `LocalStore.layerMemory` (one shared suite
 * checks both).
 *
 * - Every write path is one transaction whose first statement takes SQLite's write lock, so a
 *   transaction never reads a snapshot that another process changes under it; with WAL mode and
 *   a busy timeout, several processes can share one file.
 * - `appendLocal` applies each write through its entity's applier and journals it in one
 *   transaction; `applyPulledMutation` applies and advances the cursor in one transaction, so a
 *   crash applies nothing twice and loses nothing.
 * - The lease is one conditional upsert on `sync_state`, with `now` passed in by the caller
 *   (Effect's `Clock`), never SQL's clock: at most one owner holds it, across processes.
 * - `clientId` is created once, with the database, from SQLite's `randomblob`, and stored in
 *   `sync_meta`.
 *
 * @since 0.1.0
 */
import { LocalStore, Mutation } from "@autosync/core"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as SqlSchema from "@effect/sql/SqlSchema"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Applier from "./Applier.js"
import { retryWhileBusy } from "./internal/busy.js"
import { fromCause, fromSqlError } from "./internal/errors.js"
import * as Readonly from "./internal/readonly.js"
import * as ReplicaFile from "./ReplicaFile.js"
import * as SqliteMigrations from "./SqliteMigrations.js"

// ---------------------------------------------------------------------------------------------
// Rows, decoded with Schema at the boundary
// ---------------------------------------------------------------------------------------------

const Millis = Schema.Number
const OptionalDate = Schema.NullOr(Schema.DateFromNumber)

const StateRow = Schema.Struct({
  target_key: Schema.String,
  last_enqueued_seq: Schema.Number,
  last_acked_seq: Schema.Number,
  last_pulled_seq: Schema.Number,
  consecutive_failures: Schema.Number,
  backoff_until: OptionalDate,
  last_error: Schema.NullOr(Schema.String),
  reason_code: Schema.NullOr(Schema.String),
  // Absent from a file not migrated yet (opened read-only).
  transport_identity: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  lease_owner: Schema.NullOr(Schema.String),
  lease_until: OptionalDate,
  updated_at: Schema.DateFromNumber
})

const StateFromRow = Schema.transform(StateRow, Schema.typeSchema(Mutation.SyncState), {
  strict: true,
  decode: (row) => ({
    targetKey: row.target_key,
    lastEnqueuedSeq: row.last_enqueued_seq,
    lastAckedSeq: row.last_acked_seq,
    lastPulledSeq: row.last_pulled_seq,
    consecutiveFailures: row.consecutive_failures,
    ...(row.backoff_until !== null ? { backoffUntil: row.backoff_until } : {}),
    ...(row.last_error !== null ? { lastError: row.last_error } : {}),
    ...(row.reason_code !== null ? { reasonCode: row.reason_code } : {}),
    ...(row.transport_identity !== null ? { transportIdentity: row.transport_identity } : {}),
    ...(row.lease_owner !== null ? { leaseOwner: row.lease_owner } : {}),
    ...(row.lease_until !== null ? { leaseUntil: row.lease_until } : {}),
    updatedAt: row.updated_at
  }),
  encode: (state) => ({
    target_key: state.targetKey,
    last_enqueued_seq: state.lastEnqueuedSeq,
    last_acked_seq: state.lastAckedSeq,
    last_pulled_seq: state.lastPulledSeq,
    consecutive_failures: state.consecutiveFailures,
    backoff_until: state.backoffUntil ?? null,
    last_error: state.lastError ?? null,
    reason_code: state.reasonCode ?? null,
    transport_identity: state.transportIdentity ?? null,
    lease_owner: state.leaseOwner ?? null,
    lease_until: state.leaseUntil ?? null,
    updated_at: state.updatedAt
  })
})

/** A JSON payload stored as TEXT; SQL `NULL` stands for a missing payload (JSON `null` is the text "null"). */
const JsonText = Schema.transformOrFail(Schema.NullOr(Schema.String), Schema.Unknown, {
  strict: true,
  decode: (text, _, ast) => {
    if (text === null) return ParseResult.succeed(undefined)
    try {
      return ParseResult.succeed(JSON.parse(text) as unknown)
    } catch (e) {
      return ParseResult.fail(new ParseResult.Type(ast, text, `the payload is not JSON: ${(e as Error).message}`))
    }
  },
  encode: (value) => ParseResult.succeed(value === undefined ? null : JSON.stringify(value))
})

const JournalRow = Schema.Struct({
  seq: Schema.Number,
  target_key: Schema.String,
  source: Mutation.Source,
  project: Schema.String,
  entity: Schema.String,
  entity_key: Schema.String,
  op: Schema.String,
  payload: JsonText,
  occurred_at: Schema.DateFromNumber,
  acked_at: OptionalDate
})

// The rows' content was checked when it was written; read back, each row is checked for its
// shape only (the pushed entries are checked again on the way out, by the wire schema).
const SyncMutationShape = Schema.Struct({
  seq: Schema.Number,
  targetKey: Schema.String,
  project: Schema.String,
  entity: Schema.String,
  entityKey: Schema.String,
  op: Schema.String,
  payload: Schema.Unknown,
  source: Mutation.Source,
  occurredAt: Schema.DateFromSelf,
  ackedAt: Schema.optionalWith(Schema.DateFromSelf, { exact: true })
})

const SyncMutationFromRow = Schema.transform(JournalRow, SyncMutationShape, {
  strict: true,
  decode: (row) => ({
    seq: row.seq,
    targetKey: row.target_key,
    project: row.project,
    entity: row.entity,
    entityKey: row.entity_key,
    op: row.op,
    payload: row.payload,
    source: row.source,
    occurredAt: row.occurred_at,
    ...(row.acked_at !== null ? { ackedAt: row.acked_at } : {})
  }),
  encode: (m) => ({
    seq: m.seq,
    target_key: m.targetKey,
    source: m.source,
    project: m.project,
    entity: m.entity,
    entity_key: m.entityKey,
    op: m.op,
    payload: m.payload,
    occurred_at: m.occurredAt,
    acked_at: m.ackedAt ?? null
  })
})

const KeptAsideRow = Schema.Struct({
  id: Schema.Number,
  seq: Schema.Number,
  project: Schema.String,
  entity: Schema.String,
  entity_key: Schema.String,
  op: Schema.String,
  payload: Schema.NullOr(Schema.String),
  occurred_at: Millis
})

const KeyRow = Schema.Struct({ project: Schema.String, entity: Schema.String, entity_key: Schema.String })

const AckedRow = Schema.Struct({
  seq: Schema.Number,
  project: Schema.String,
  entity: Schema.String,
  entity_key: Schema.String
})

const DocumentRow = Schema.Struct({
  project: Schema.String,
  entity: Schema.String,
  entity_key: Schema.String,
  value: Schema.parseJson()
})

const DeadLetterRow = Schema.Struct({
  seq: Schema.Number,
  reason: Schema.String,
  mutation: Schema.parseJson()
})

const CountRow = Schema.Struct({ n: Schema.Number })
const decodeChanges = Schema.decodeUnknown(Schema.Struct({ changes: Schema.Number }))
const decodeSuperseding = Schema.decodeUnknown(Schema.Array(Schema.Struct({
  project: Schema.String,
  entity: Schema.String,
  entity_key: Schema.String,
  n: Schema.Number
})))
const MetaRow = Schema.Struct({ value: Schema.String })
const ProjectRow = Schema.Struct({ project: Schema.String })
const ValueRow = Schema.Struct({ value: Schema.parseJson() })

/** A pulled mutation without its payload: checked first, so the applier names payload problems. */
const PulledShape = Schema.Struct({
  seq: Mutation.Seq,
  project: Mutation.StoredProject,
  entity: Mutation.Entity,
  entityKey: Mutation.EntityKey,
  op: Mutation.Op,
  occurredAt: Schema.ValidDateFromSelf
})
const decodePulledEither = Schema.decodeUnknownEither(Mutation.PulledMutation)

const encodePulled = Schema.encodeUnknownEither(Mutation.PulledMutation)
const decodePulled = Schema.decodeUnknownOption(Mutation.PulledMutation)

const compare = (a: string, b: string) => a < b ? -1 : a > b ? 1 : 0

/**
 * Acks as runs of consecutive local seqs whose server seqs are consecutive too (`delta` =
 * serverSeq − seq), or unknown throughout: one indexed range update per run. A push is stored
 * in one piece, so a batch is usually a single run; a JSON lookup per row was quadratic in the
 * batch (17 µs/row at 1,000).
 */
interface AckRun {
  readonly from: number
  to: number
  readonly delta: number | undefined
}
const ackRuns = (serverSeqs: ReadonlyMap<number, number | undefined>) => {
  const runs: Array<AckRun> = []
  for (const seq of [...serverSeqs.keys()].sort((a, b) => a - b)) {
    const server = serverSeqs.get(seq)
    const delta = server === undefined ? undefined : server - seq
    const last = runs[runs.length - 1]
    if (last !== undefined && last.to === seq - 1 && last.delta === delta) last.to = seq
    else runs.push({ from: seq, to: seq, delta })
  }
  return runs
}

const maxDateMillis = 8.64e15

const keyOf = (project: string, entity: string, entityKey: string) => `${project}\u0000${entity}\u0000${entityKey}`

/** A mutation as a JSON text for the dead letters: its wire form when valid, else a best effort. */
const mutationJson = (m: unknown): string => {
  const encoded = encodePulled(m)
  if (Either.isRight(encoded)) return JSON.stringify(encoded.right)
  try {
    return JSON.stringify(m, (_key, value) => typeof value === "bigint" ? value.toString() : value) ?? "null"
  } catch {
    return JSON.stringify(String(m))
  }
}

const describeDatabase: Effect.Effect<string> = Effect.map(
  Effect.serviceOption(SqliteClient.SqliteClient),
  Option.match({
    onNone: () => "the SQLite database",
    onSome: (client) => JSON.stringify(client.config.filename)
  })
)

const isReadonlyConnection: Effect.Effect<boolean> = Effect.map(
  Effect.serviceOption(SqliteClient.SqliteClient),
  Option.match({ onNone: () => false, onSome: (client) => client.config.readonly === true })
)

/** What a read-only connection needs: a replica this version reads, as nothing can be migrated. */
const checkReadonly = (label: string) =>
  Effect.flatMap(ReplicaFile.classify(label), (kind) =>
    kind._tag === "Replica"
      ? SqliteMigrations.checkReadable(label, kind.migration)
      : new LocalStore.LocalStoreError({
        reason: "storage",
        message: `${label} is opened read-only and holds no autosync replica: creating one needs to write it`
      }))

interface Touched {
  readonly project: string
  readonly entity: string
  readonly entityKey: string
  serverSeq: number
}

/**
 * A `LocalStore` over the `SqlClient` in context. Checks the schema version, runs the
 * migrations and creates the `clientId` on first use; on a read-only `SqliteClient` it does
 * neither and only reads (see {@link layerFileReadonly}). Entities are applied through the
 * `Applier` registry in context (the document table when none is provided).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<LocalStore.LocalStore["Type"], LocalStore.LocalStoreError, SqlClient.SqlClient> =
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const label = yield* describeDatabase
    const appliers = yield* Applier.Applier
    const fail = (action: string) => fromSqlError(label, action)
    // On a read-only connection (`layerFileReadonly`): no migrations, no new client id.
    const readonly = yield* isReadonlyConnection

    if (readonly) yield* checkReadonly(label)
    else yield* SqliteMigrations.run(label)

    // `INSERT ... ON CONFLICT DO NOTHING` then read: of several processes initialising one file
    // at once, the first insert wins and every process reads the same id.
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

    const now = Clock.currentTimeMillis

    /**
     * A write transaction. Its first statement is a write (a no-op UPDATE) so that SQLite takes
     * the write lock before the transaction reads anything, waiting on the busy timeout; a
     * deferred transaction that read first could otherwise fail with SQLITE_BUSY_SNAPSHOT when
     * another process committed in between.
     */
    const writeTransaction = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      sql.withTransaction(
        Effect.zipRight(sql`UPDATE sync_meta SET value = value WHERE key = 'write_lock'`, effect)
      )

    const touchState = (targetKey: string, at: number) =>
      sql`INSERT INTO sync_state (target_key, updated_at) VALUES (${targetKey}, ${at})
        ON CONFLICT (target_key) DO UPDATE SET updated_at = excluded.updated_at`

    const findState = SqlSchema.findOne({
      Request: Schema.String,
      Result: StateFromRow,
      execute: (targetKey) => sql`SELECT * FROM sync_state WHERE target_key = ${targetKey}`
    })

    const findPending = SqlSchema.findAll({
      Request: Schema.Struct({
        targetKey: Schema.String,
        limit: Schema.Number,
        excluded: Schema.Array(Schema.String)
      }),
      Result: SyncMutationFromRow,
      execute: ({ excluded, limit, targetKey }) =>
        sql`SELECT m.* FROM sync_mutations m
          JOIN sync_enrolled_projects e ON e.project = m.project
          WHERE m.target_key = ${targetKey} AND m.source = 'local' AND m.acked_at IS NULL
          ${excluded.length > 0 ? sql`AND m.project NOT IN ${sql.in(excluded)}` : sql``}
          ORDER BY m.seq
          ${limit >= 0 ? sql`LIMIT ${limit}` : sql``}`
    })

    const count = (query: Effect.Effect<ReadonlyArray<unknown>, SqlError>) =>
      Effect.map(
        Effect.flatMap(query, Schema.decodeUnknown(Schema.Array(CountRow))),
        (rows) => rows[0]?.n ?? 0
      )

    const hasUnacked = (targetKey: string, project: string, entity: string, entityKey: string) =>
      Effect.map(
        count(sql`SELECT COUNT(*) AS n FROM sync_mutations
          WHERE target_key = ${targetKey} AND source = 'local' AND acked_at IS NULL
            AND project = ${project} AND entity = ${entity} AND entity_key = ${entityKey}`),
        (n) => n > 0
      )

    const insertDeadLetter = (targetKey: string, seq: number, reason: string, mutation: unknown, at: number) =>
      sql`INSERT INTO sync_dead_letters (target_key, seq, reason, mutation, created_at)
        VALUES (${targetKey}, ${seq}, ${reason}, ${mutationJson(mutation)}, ${at})`

    /**
     * Applies a pulled mutation through its applier in a savepoint: a rejection rolls back the
     * applier's writes only and dead-letters the mutation.
     */
    const applyRemote = (targetKey: string, m: Mutation.PulledMutation, at: number) =>
      sql.withTransaction(
        appliers.get(m.entity).apply({ ...m, targetKey, source: "remote" }).pipe(
          Effect.provideService(SqlClient.SqlClient, sql)
        )
      ).pipe(
        Effect.as("applied" as const),
        Effect.catchTag("ApplyRejected", (rejected) =>
          Effect.as(insertDeadLetter(targetKey, m.seq, rejected.reason, m, at), "dead_letter" as const))
      )

    const insertRemote = (targetKey: string, m: Mutation.PulledMutation, status: string) =>
      sql`INSERT INTO sync_mutations
        (target_key, source, seq, project, entity, entity_key, op, payload, occurred_at, status)
        VALUES (${targetKey}, 'remote', ${m.seq}, ${m.project}, ${m.entity}, ${m.entityKey}, ${m.op},
          ${m.payload === undefined ? null : JSON.stringify(m.payload)}, ${m.occurredAt.getTime()}, ${status})`

    /**
     * After an ack: for each key left without un-acked local writes, kept-aside mutations with
     * seq `<=` the acked server seq are discarded, later ones applied in seq order.
     */
    const keptAsideKeys = (targetKey: string) =>
      sql`SELECT DISTINCT project, entity, entity_key FROM sync_mutations
        WHERE target_key = ${targetKey} AND source = 'remote' AND status = 'kept_aside'`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(KeyRow))),
        Effect.map((rows) => new Set(rows.map((r) => keyOf(r.project, r.entity, r.entity_key))))
      )

    // Only keys that hold kept-aside mutations need settling: one query finds them (usually none).
    const settle = (targetKey: string, touched: ReadonlyMap<string, Touched>, at: number) =>
      Effect.flatMap(
        keptAsideKeys(targetKey),
        (held) => settleKeys(targetKey, [...touched].filter(([k]) => held.has(k)).map(([, t]) => t), at)
      )

    const settleKeys = (targetKey: string, touched: ReadonlyArray<Touched>, at: number) =>
      Effect.forEach(touched, (key) =>
        Effect.gen(function*() {
          if (yield* hasUnacked(targetKey, key.project, key.entity, key.entityKey)) return
          const held = yield* sql`SELECT id, seq, project, entity, entity_key, op, payload, occurred_at
            FROM sync_mutations
            WHERE target_key = ${targetKey} AND source = 'remote' AND status = 'kept_aside'
              AND project = ${key.project} AND entity = ${key.entity} AND entity_key = ${key.entityKey}
            ORDER BY seq`.pipe(Effect.flatMap(Schema.decodeUnknown(Schema.Array(KeptAsideRow))))
          for (const row of held) {
            if (row.seq <= key.serverSeq) {
              yield* sql`UPDATE sync_mutations SET status = 'discarded' WHERE id = ${row.id}`
              continue
            }
            const decoded = decodePulledEither({
              seq: row.seq,
              project: row.project,
              entity: row.entity,
              entity_key: row.entity_key,
              op: row.op,
              payload: row.payload === null ? undefined : parseJsonOrUndefined(row.payload),
              occurred_at: new Date(row.occurred_at).toISOString()
            })
            if (Either.isLeft(decoded)) {
              const reason = `kept-aside row could not be decoded: ${
                ParseResult.TreeFormatter.formatErrorSync(decoded.left)
              }`
              yield* insertDeadLetter(targetKey, row.seq, reason, row, at)
              yield* sql`UPDATE sync_mutations SET status = 'dead_letter' WHERE id = ${row.id}`
              continue
            }
            const result = yield* applyRemote(targetKey, decoded.right, at)
            yield* sql`UPDATE sync_mutations SET status = ${result} WHERE id = ${row.id}`
          }
        }), { discard: true })

    /** Marks local rows acked (with their server seqs when known) and settles their keys. */
    const markAcked = (
      targetKey: string,
      rows: ReadonlyArray<typeof AckedRow.Type>,
      serverSeqs: ReadonlyMap<number, number | undefined>,
      at: number
    ) =>
      Effect.gen(function*() {
        const touched = new Map<string, Touched>()
        let maxSeq = 0
        for (const row of rows) {
          maxSeq = Math.max(maxSeq, row.seq)
          const key = keyOf(row.project, row.entity, row.entity_key)
          const serverSeq = serverSeqs.get(row.seq) ?? 0
          const entry = touched.get(key)
          if (entry) entry.serverSeq = Math.max(entry.serverSeq, serverSeq)
          else touched.set(key, { project: row.project, entity: row.entity, entityKey: row.entity_key, serverSeq })
        }
        yield* settle(targetKey, touched, at)
        yield* touchState(targetKey, at)
        yield* sql`UPDATE sync_state SET last_acked_seq = MAX(last_acked_seq, ${maxSeq}) WHERE target_key = ${targetKey}`
      })

    const checkSeqs = (mutations: ReadonlyArray<Mutation.PulledMutation>) => {
      const bad = mutations.find((m) => !Number.isSafeInteger(m.seq) || m.seq <= 0)
      return bad === undefined ? Effect.void : Effect.fail(
        new LocalStore.LocalStoreError({
          reason: "invalid_input",
          message: `a pulled mutation needs a positive integer seq, got ${String(bad.seq)}`
        })
      )
    }

    // The keys among `mutations` that have un-acked local writes: one query per page. Nothing can
    // change that set while the page's write transaction holds the lock.
    const unackedKeys = (targetKey: string, mutations: ReadonlyArray<Mutation.PulledMutation>) =>
      sql`SELECT DISTINCT project, entity, entity_key FROM sync_mutations
        WHERE target_key = ${targetKey} AND source = 'local' AND acked_at IS NULL
          AND entity_key IN ${sql.in([...new Set(mutations.map((m) => m.entityKey))])}`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(KeyRow))),
        Effect.map((rows) => new Set(rows.map((r) => keyOf(r.project, r.entity, r.entity_key))))
      )

    // For the page's keys, the highest server seq of our acked writes above the page's first
    // seq: a pulled mutation below it was decided by our write (pulls leave our writes out).
    const supersedingSeqs = (targetKey: string, mutations: ReadonlyArray<Mutation.PulledMutation>) =>
      sql`SELECT project, entity, entity_key, MAX(server_seq) AS n FROM sync_mutations
        WHERE target_key = ${targetKey} AND source = 'local' AND server_seq IS NOT NULL
          AND entity_key IN ${sql.in([...new Set(mutations.map((m) => m.entityKey))])}
          AND server_seq > ${mutations[0].seq}
        GROUP BY project, entity, entity_key`.pipe(
        Effect.flatMap(decodeSuperseding),
        Effect.map((rows) => new Map(rows.map((r) => [keyOf(r.project, r.entity, r.entity_key), r.n])))
      )
    const isSuperseded = (superseding: ReadonlyMap<string, number>, m: Mutation.PulledMutation) =>
      (superseding.get(keyOf(m.project, m.entity, m.entityKey)) ?? 0) > m.seq

    /** Why a pulled mutation must go to the dead letters, or `undefined`. */
    const problemOf = (m: Mutation.PulledMutation): string | undefined => {
      const shape = Schema.decodeUnknownEither(PulledShape)(m)
      return Either.isLeft(shape)
        ? `invalid mutation: ${ParseResult.TreeFormatter.formatErrorSync(shape.left)}`
        : (appliers.get(m.entity).validate(m) ??
          (m.payload === undefined ? undefined : Mutation.payloadProblem(m.payload)))
    }

    /** Applies one pulled mutation (cursor excluded); runs inside the caller's transaction. */
    const applyOne = (
      targetKey: string,
      m: Mutation.PulledMutation,
      unacked: ReadonlySet<string>,
      superseding: ReadonlyMap<string, number>,
      at: number
    ) =>
      Effect.gen(function*() {
        const problem = problemOf(m)
        if (problem !== undefined) {
          yield* insertDeadLetter(targetKey, m.seq, problem, m, at)
          return "dead_letter" as const
        }
        if (unacked.has(keyOf(m.project, m.entity, m.entityKey))) {
          yield* insertRemote(targetKey, m, "kept_aside")
          return "kept_aside" as const
        }
        if (isSuperseded(superseding, m)) {
          yield* insertRemote(targetKey, m, "discarded")
          return "superseded" as const
        }
        const result = yield* applyRemote(targetKey, m, at)
        yield* insertRemote(targetKey, m, result)
        return result
      })

    /**
     * Applies a page in the caller's write transaction: the cursor is read once and written once,
     * each mutation runs in a savepoint, and a failure keeps the ones before it.
     */
    const applyOneByOne = (targetKey: string, mutations: ReadonlyArray<Mutation.PulledMutation>, at: number) =>
      Effect.gen(function*() {
        let cursor = Option.match(yield* findState(targetKey), { onNone: () => 0, onSome: (s) => s.lastPulledSeq })
        const unacked = yield* unackedKeys(targetKey, mutations)
        const superseding = yield* supersedingSeqs(targetKey, mutations)
        const results: Array<Mutation.ApplyResult> = []
        let failure = Option.none<SqlError>()
        for (const m of mutations) {
          if (m.seq <= cursor) {
            results.push("duplicate")
            continue
          }
          const applied = yield* Effect.either(sql.withTransaction(applyOne(targetKey, m, unacked, superseding, at)))
          if (Either.isLeft(applied)) {
            failure = Option.some(applied.left)
            break
          }
          results.push(applied.right)
          cursor = m.seq
        }
        yield* touchState(targetKey, at)
        yield* sql`UPDATE sync_state SET last_pulled_seq = MAX(last_pulled_seq, ${cursor}) WHERE target_key = ${targetKey}`
        return [results, failure] as const
      })

    const decodeAcked = Schema.decodeUnknown(Schema.Array(AckedRow))

    const getSyncState = (targetKey: string) =>
      Effect.flatMap(now, (at) =>
        Effect.map(
          findState(targetKey),
          Option.getOrElse(() => LocalStore.emptyState(targetKey, new Date(at)))
        ))

    const remoteRow = (targetKey: string, m: Mutation.PulledMutation, status: string) => ({
      target_key: targetKey,
      source: "remote",
      seq: m.seq,
      project: m.project,
      entity: m.entity,
      entity_key: m.entityKey,
      op: m.op,
      payload: m.payload === undefined ? null : JSON.stringify(m.payload),
      occurred_at: m.occurredAt.getTime(),
      status
    })

    /**
     * The whole page in a few statements, for a page where nothing fails: the same decisions as
     * {@link applyOneByOne}, the applies batched per applier, the journal rows in one insert.
     */
    const applyPageAtOnce = (targetKey: string, mutations: ReadonlyArray<Mutation.PulledMutation>, at: number) =>
      Effect.gen(function*() {
        let cursor = Option.match(yield* findState(targetKey), { onNone: () => 0, onSome: (s) => s.lastPulledSeq })
        const unacked = yield* unackedKeys(targetKey, mutations)
        const superseding = yield* supersedingSeqs(targetKey, mutations)
        const results: Array<Mutation.ApplyResult> = []
        const rows: Array<ReturnType<typeof remoteRow>> = []
        const changes: Array<Applier.Change> = []
        for (const m of mutations) {
          if (m.seq <= cursor) {
            results.push("duplicate")
            continue
          }
          cursor = m.seq
          const problem = problemOf(m)
          if (problem !== undefined) {
            yield* insertDeadLetter(targetKey, m.seq, problem, m, at)
            results.push("dead_letter")
          } else if (unacked.has(keyOf(m.project, m.entity, m.entityKey))) {
            rows.push(remoteRow(targetKey, m, "kept_aside"))
            results.push("kept_aside")
          } else if (isSuperseded(superseding, m)) {
            rows.push(remoteRow(targetKey, m, "discarded"))
            results.push("superseded")
          } else {
            changes.push({ ...m, targetKey, source: "remote" })
            rows.push(remoteRow(targetKey, m, "applied"))
            results.push("applied")
          }
        }
        yield* Applier.applyAll(appliers, changes).pipe(Effect.provideService(SqlClient.SqlClient, sql))
        for (const chunk of Applier.inChunks(rows)) yield* sql`INSERT INTO sync_mutations ${sql.insert(chunk)}`
        yield* touchState(targetKey, at)
        yield* sql`UPDATE sync_state SET last_pulled_seq = MAX(last_pulled_seq, ${cursor}) WHERE target_key = ${targetKey}`
        return results
      })

    // A page at once in a savepoint; if anything in it fails (an applier refuses, a statement
    // fails), that is rolled back and the page goes one mutation at a time, which records dead
    // letters precisely and keeps the prefix before a failure.
    const applyPage = (targetKey: string, mutations: ReadonlyArray<Mutation.PulledMutation>, at: number) =>
      Effect.flatMap(
        Effect.either(sql.withTransaction(applyPageAtOnce(targetKey, mutations, at))),
        (atOnce) =>
          Either.isRight(atOnce)
            ? Effect.succeed([atOnce.right, Option.none<SqlError>()] as const)
            : applyOneByOne(targetKey, mutations, at)
      )

    const applyPulledMutations = Effect.fn("SqliteLocalStore.applyPulledMutations")(function*(
      targetKey: string,
      mutations: ReadonlyArray<Mutation.PulledMutation>,
      options?: LocalStore.ApplyPageOptions
    ) {
      yield* checkSeqs(mutations)
      const through = options?.throughSeq
      if (through !== undefined && !(Number.isSafeInteger(through) && through >= 0)) {
        return yield* new LocalStore.LocalStoreError({
          reason: "invalid_input",
          message: `throughSeq must be an integer >= 0, got ${String(through)}`
        })
      }
      if (mutations.length === 0 && through === undefined) return []
      const at = yield* now
      const [results, failure] = yield* writeTransaction(Effect.gen(function*() {
        const applied = mutations.length === 0
          ? [[], Option.none<SqlError>()] as const
          : yield* applyPage(targetKey, mutations, at)
        if (through !== undefined && Option.isNone(applied[1])) {
          yield* touchState(targetKey, at)
          yield* sql`UPDATE sync_state SET last_pulled_seq = MAX(last_pulled_seq, ${through})
            WHERE target_key = ${targetKey}`
        }
        return applied
      })).pipe(Effect.mapError(fail("applying pulled mutations")))
      if (Option.isSome(failure)) return yield* fail("applying a pulled mutation")(failure.value)
      return results
    })

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

    return LocalStore.LocalStore.of({
      get clientId() {
        return clientId
      },

      getSyncState: (targetKey) => getSyncState(targetKey).pipe(Effect.mapError(fail("reading the sync state"))),

      listPendingMutations: (targetKey, limit, options) =>
        Effect.suspend(() => {
          // Same bounds as the memory store: up to `limit` rows, none for a limit below 1.
          const bounded = Number.isNaN(limit) || limit <= 0 ? 0 : Number.isFinite(limit) ? Math.ceil(limit) : -1
          if (bounded === 0) return Effect.succeed([])
          return findPending({ targetKey, limit: bounded, excluded: options?.excludeProjects ?? [] })
        }).pipe(Effect.mapError(fail("listing pending mutations"))),

      countPending: (targetKey) =>
        count(sql`SELECT COUNT(*) AS n FROM sync_mutations
          WHERE target_key = ${targetKey} AND source = 'local' AND acked_at IS NULL`).pipe(
          Effect.mapError(fail("counting pending mutations"))
        ),

      ackMutations: Effect.fn("SqliteLocalStore.ackMutations")(function*(targetKey, lastAckedSeq) {
        const at = yield* now
        yield* writeTransaction(Effect.gen(function*() {
          const rows = yield* sql`UPDATE sync_mutations SET acked_at = ${at}
            WHERE target_key = ${targetKey} AND source = 'local' AND acked_at IS NULL AND seq <= ${lastAckedSeq}
            RETURNING seq, project, entity, entity_key`.pipe(Effect.flatMap(decodeAcked))
          yield* markAcked(targetKey, rows, new Map(), at)
        })).pipe(Effect.mapError(fail("acking mutations")))
      }),

      ackMutationSeqs: Effect.fn("SqliteLocalStore.ackMutationSeqs")(function*(targetKey, acks) {
        const at = yield* now
        const serverSeqs = new Map(acks.map((a) => [a.seq, a.serverSeq] as const))
        const updateRun = (run: AckRun, returning: boolean) =>
          sql`UPDATE sync_mutations
            SET acked_at = ${at}, server_seq = ${run.delta === undefined ? sql`server_seq` : sql`seq + ${run.delta}`}
            WHERE target_key = ${targetKey} AND source = 'local' AND acked_at IS NULL
              AND seq BETWEEN ${run.from} AND ${run.to}
            ${returning ? sql`RETURNING seq, project, entity, entity_key` : sql``}`
        yield* writeTransaction(Effect.gen(function*() {
          const runs = ackRuns(serverSeqs)
          if ((yield* keptAsideKeys(targetKey)).size === 0) {
            // Nothing is kept aside, so no key needs settling and the rows need not be read back
            // (RETURNING doubles the statement's cost). A run updated in full ends at `to`.
            let maxSeq = 0
            for (const run of runs) {
              const { changes } = yield* updateRun(run, false).raw.pipe(Effect.flatMap(decodeChanges))
              if (changes === run.to - run.from + 1) maxSeq = Math.max(maxSeq, run.to)
              else if (changes > 0) {
                // Part of the run was unknown or acked before: the highest row now acked (rows
                // acked before are at or below last_acked_seq already).
                maxSeq = Math.max(
                  maxSeq,
                  yield* count(sql`SELECT COALESCE(MAX(seq), 0) AS n FROM sync_mutations
                    WHERE target_key = ${targetKey} AND source = 'local' AND acked_at IS NOT NULL
                      AND seq BETWEEN ${run.from} AND ${run.to}`)
                )
              }
            }
            yield* touchState(targetKey, at)
            yield* sql`UPDATE sync_state SET last_acked_seq = MAX(last_acked_seq, ${maxSeq})
              WHERE target_key = ${targetKey}`
            return
          }
          const rows: Array<typeof AckedRow.Type> = []
          for (const run of runs) rows.push(...(yield* updateRun(run, true).pipe(Effect.flatMap(decodeAcked))))
          yield* markAcked(targetKey, rows, serverSeqs, at)
        })).pipe(Effect.mapError(fail("acking mutations")))
      }),

      skipAckNonEnrolledMutations: (targetKey) =>
        count(sql`SELECT COUNT(*) AS n FROM sync_mutations m
          WHERE m.target_key = ${targetKey} AND m.source = 'local' AND m.acked_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM sync_enrolled_projects e WHERE e.project = m.project)`).pipe(
          Effect.mapError(fail("counting non-enrolled mutations"))
        ),

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

      applyPulledMutation: (targetKey, m) =>
        Effect.flatMap(applyPulledMutations(targetKey, [m]), (results) => Effect.succeed(results[0])),

      applyPulledMutations,

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

      appendLocal: Effect.fn("SqliteLocalStore.appendLocal")(function*(targetKey, entries) {
        const writes = yield* LocalStore.decodeWrites(entries)
        for (const w of writes) {
          const problem = appliers.get(w.entity).validate(w)
          if (problem !== undefined) {
            return yield* new LocalStore.LocalStoreError({ reason: "invalid_input", message: problem })
          }
        }
        if (writes.length === 0) return []
        const at = yield* now
        return yield* writeTransaction(Effect.gen(function*() {
          const last = yield* count(sql`SELECT COALESCE(MAX(seq), 0) AS n FROM sync_mutations WHERE source = 'local'`)
          const seqs = writes.map((_, i) => last + 1 + i)
          // The whole batch in a few statements: appliers that can take many changes at once do.
          yield* Applier.applyAll(appliers, writes.map((w, i) => ({ ...w, targetKey, source: "local", seq: seqs[i] })))
            .pipe(
              Effect.provideService(SqlClient.SqlClient, sql),
              Effect.catchTag(
                "ApplyRejected",
                (rejected) => new LocalStore.LocalStoreError({ reason: "invalid_input", message: rejected.reason })
              )
            )
          for (const rows of Applier.inChunks(writes.map((w, i) => ({ w, seq: seqs[i] })))) {
            yield* sql`INSERT INTO sync_mutations ${
              sql.insert(rows.map(({ seq, w }) => ({
                target_key: targetKey,
                source: "local",
                seq,
                project: w.project,
                entity: w.entity,
                entity_key: w.entityKey,
                op: w.op,
                payload: JSON.stringify(w.payload),
                occurred_at: at
              })))
            }`
          }
          yield* touchState(targetKey, at)
          yield* sql`UPDATE sync_state SET last_enqueued_seq = ${seqs[seqs.length - 1]} WHERE target_key = ${targetKey}`
          return seqs
        })).pipe(Effect.mapError(fail("appending local writes")))
      }),

      enroll: (project) =>
        Effect.flatMap(
          LocalStore.decodeProject(project),
          (p) =>
            Effect.flatMap(now, (at) =>
              sql`INSERT INTO sync_enrolled_projects (project, enrolled_at) VALUES (${p}, ${at})
              ON CONFLICT (project) DO NOTHING`.pipe(Effect.asVoid, Effect.mapError(fail("enrolling a project"))))
        ),

      unenroll: (project) =>
        Effect.flatMap(
          LocalStore.decodeProject(project),
          (p) =>
            sql`DELETE FROM sync_enrolled_projects WHERE project = ${p}`.pipe(
              Effect.asVoid,
              Effect.mapError(fail("unenrolling a project"))
            )
        ),

      listEnrolled: sql`SELECT project FROM sync_enrolled_projects`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(ProjectRow))),
        Effect.map((rows) => rows.map((r) => r.project).sort(compare)),
        Effect.mapError(fail("listing enrolled projects"))
      ),

      getDocument: (project, entity, entityKey) =>
        SqlSchema.findOne({
          Request: Schema.Void,
          Result: ValueRow,
          execute: () =>
            sql`SELECT value FROM sync_documents
              WHERE project = ${project} AND entity = ${entity} AND entity_key = ${entityKey}`
        })(undefined).pipe(
          Effect.map(Option.map((row) => row.value)),
          Effect.mapError(fail("reading a document"))
        ),

      listDocuments: (project, entity) =>
        sql`SELECT project, entity, entity_key, value FROM sync_documents
          WHERE project = ${project} ${entity === undefined ? sql`` : sql`AND entity = ${entity}`}`.pipe(
          Effect.flatMap(Schema.decodeUnknown(Schema.Array(DocumentRow))),
          Effect.map((rows) =>
            rows
              .map((r): LocalStore.Document => ({
                project: r.project,
                entity: r.entity,
                entityKey: r.entity_key,
                value: r.value
              }))
              .sort((a, b) => a.entity === b.entity ? compare(a.entityKey, b.entityKey) : compare(a.entity, b.entity))
          ),
          Effect.mapError(fail("listing documents"))
        ),

      listDeadLetters: sql`SELECT seq, reason, mutation FROM sync_dead_letters ORDER BY id`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(DeadLetterRow))),
        Effect.map((rows) =>
          rows.map((r): LocalStore.DeadLetter => ({
            seq: r.seq,
            reason: r.reason,
            mutation: Option.getOrElse(decodePulled(r.mutation), () => r.mutation)
          }))
        ),
        Effect.mapError(fail("listing dead letters"))
      ),

      reidentify: reidentify()
    })
  })

const parseJsonOrUndefined = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * The SQLite `LocalStore` over the `SqlClient` in context (see {@link make}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<LocalStore.LocalStore, LocalStore.LocalStoreError, SqlClient.SqlClient> = Layer
  .effect(LocalStore.LocalStore, make)

/**
 * Options of {@link layerFile}.
 *
 * @since 0.1.0
 * @category models
 */
export interface FileOptions {
  /**
   * How long a statement waits for another connection's lock before failing with a storage
   * error. Defaults to 5 seconds. Longer rides out long transactions of other processes;
   * shorter surfaces contention sooner.
   */
  readonly busyTimeout?: Duration.DurationInput
  /**
   * SQLite's `synchronous` setting. Defaults to `"full"`: every commit is on disk before it
   * returns, even across a power loss. `"normal"` (with WAL) syncs less often, which makes
   * applying a large pull several times faster; a crash of the process (kill -9) still loses
   * nothing, but a power loss may undo the last commits (never corrupting the file).
   */
  readonly synchronous?: "full" | "normal"
}

const busyMillisOf = (options: FileOptions) =>
  Math.max(0, Math.round(Duration.toMillis(Duration.decode(options.busyTimeout ?? "5 seconds"))))

/**
 * Opens a database file, creating it when missing: refuses a file that is not a SQLite
 * database, that holds an autosync server's tables, or that a newer autosync wrote (reason
 * `"incompatible"`, nothing changed; see `ReplicaFile`), sets a busy timeout and WAL mode.
 * Steps that meet another process's lock (several processes opening a new file at once) are
 * retried until the busy timeout.
 *
 * @since 0.1.0
 * @category constructors
 */
export const openFile = (
  path: string,
  options: FileOptions = {}
): Effect.Effect<SqliteClient.SqliteClient, LocalStore.LocalStoreError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const label = JSON.stringify(path)
    const busyMillis = busyMillisOf(options)
    // WAL is switched on below, after the checks, so a refused file is left as it was.
    const client = yield* SqliteClient.make({ filename: path, disableWAL: true }).pipe(
      Effect.catchAllDefect((defect) => Effect.fail(fromCause(label, "opening", defect)))
    )
    yield* client.unsafe(`PRAGMA busy_timeout = ${busyMillis}`).pipe(
      Effect.mapError(fromSqlError(label, "setting the busy timeout"))
    )
    // Each step is idempotent: retried while another process opening the file holds the lock.
    yield* retryWhileBusy(
      Effect.gen(function*() {
        yield* client`SELECT COUNT(*) AS n FROM sqlite_master`.pipe(Effect.mapError(fromSqlError(label, "opening")))
        const kind = yield* ReplicaFile.classify(label)
        if (kind._tag === "Server") return yield* ReplicaFile.refuse(path, kind)
        yield* SqliteMigrations.checkVersion(label)
        yield* client.unsafe(`PRAGMA synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`).pipe(
          Effect.mapError(fromSqlError(label, "setting synchronous"))
        )
        yield* client.unsafe("PRAGMA journal_mode = WAL").pipe(
          Effect.mapError(fromSqlError(label, "switching to WAL mode"))
        )
      }).pipe(Effect.provideService(SqlClient.SqlClient, client)),
      `${busyMillis} millis`
    )
    return client
  })

/**
 * A ready-made store on a database file: the `SqliteClient` (WAL mode, busy timeout), the
 * migrations and the `LocalStore`. Fails with a `LocalStoreError` naming the path when the
 * file is not a SQLite database or was written by a newer schema (`"incompatible"`), or
 * cannot be opened or written (`"storage"`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFile = (
  path: string,
  options: FileOptions = {}
): Layer.Layer<
  LocalStore.LocalStore | SqlClient.SqlClient | SqliteClient.SqliteClient,
  LocalStore.LocalStoreError
> =>
  Layer.scopedContext(Effect.gen(function*() {
    const client = yield* openFile(path, options)
    // Migrations and the client id: retried while another process initialising the file holds the lock.
    const store = yield* retryWhileBusy(
      make.pipe(
        Effect.provideService(SqlClient.SqlClient, client),
        Effect.provideService(SqliteClient.SqliteClient, client)
      ),
      `${busyMillisOf(options)} millis`
    )
    return Context.make(LocalStore.LocalStore, store).pipe(
      Context.add(SqlClient.SqlClient, client),
      Context.add(SqliteClient.SqliteClient, client)
    )
  })).pipe(Layer.provide(Reactivity.layer))

/**
 * A store on an existing replica, opened read-only: a SQLite read-only connection, no
 * migrations, no client id created, no WAL switch, nothing written (see
 * `ReplicaFile.openReadonly`, which also says what happens to the `-wal`/`-shm` side files).
 * Fails with a `LocalStoreError` naming the file when it is missing, empty, not SQLite, a SQLite
 * database without autosync's tables, an autosync server's database, or a replica of a newer
 * or an older autosync (reason `"incompatible"`; an older one is migrated by opening it once
 * with {@link layerFile}).
 *
 * Every read of `LocalStore` (and of `Documents` over it) works; every write fails with a
 * `LocalStoreError` saying the store was opened read-only. Another process may write the file
 * meanwhile: each read sees the last committed state.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFileReadonly = (
  path: string,
  options: Pick<FileOptions, "busyTimeout"> = {}
): Layer.Layer<
  LocalStore.LocalStore | SqlClient.SqlClient | SqliteClient.SqliteClient,
  LocalStore.LocalStoreError
> =>
  Layer.scopedContext(Effect.gen(function*() {
    const busyMillis = busyMillisOf(options)
    const client = yield* ReplicaFile.openReadonly(path, { busyTimeoutMillis: busyMillis })
    const store = yield* retryWhileBusy(
      make.pipe(
        Effect.provideService(SqlClient.SqlClient, client),
        Effect.provideService(SqliteClient.SqliteClient, client)
      ),
      `${busyMillis} millis`
    )
    return Context.make(LocalStore.LocalStore, Readonly.guard(store, JSON.stringify(path))).pipe(
      Context.add(SqlClient.SqlClient, client),
      Context.add(SqliteClient.SqliteClient, client)
    )
  })).pipe(Layer.provide(Reactivity.layer))
