/**
 * The `MutationLog` over `@effect/sql`, shared by the SQLite and PostgreSQL backends. The rules
 * are core's `LogRules` (`plan` decides what an append stores, `page` cuts a pull's page,
 * `awaitAbove` holds a long-poll); this module only stores them. What differs between the two
 * databases comes in as a `Dialect`: how seq assignment is serialised, how other processes are
 * told about new seqs, and how this process hears about theirs (feeding the same latest-seq
 * `SubscriptionRef` the long-polls wait on). Appends are group-committed: one writer fiber stores
 * all the appends waiting, in one transaction. Compaction runs in bounded transactions (a batch
 * of rows each) under the same lock as appends.
 */
import type { Mutation } from "@autosync/core"
import { LogRules } from "@autosync/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { fromConflict, MutationLog, MutationLogError } from "../MutationLog.js"

/** @internal */
export interface Dialect {
  /** Runs first in the append transaction: seqs are assigned, and committed, one batch at a time. */
  readonly lock: Statement.Statement<unknown>
  /** Runs in the append transaction when it stored something; `latest` is the new last seq. */
  readonly announce?: ((latest: number) => Statement.Statement<unknown>) | undefined
  /** Hints from other processes: "the log now reaches this seq". */
  readonly hints: Stream.Stream<number, SqlError>
}

/** @internal */
export interface Options {
  /** How often the latest seq is re-read, in case a hint was missed. */
  readonly pollInterval: Duration.DurationInput
}

/** int8 columns come back as numbers from SQLite and as strings from PostgreSQL. */
const Int = Schema.Union(Schema.Int, Schema.compose(Schema.NumberFromString, Schema.Int))

const LatestRow = Schema.Struct({ latest: Schema.NullOr(Int) })

/** A row's content columns (what identity compares, and what a pull sends). */
const contentColumns = {
  project: Schema.String,
  entity: Schema.String,
  entity_key: Schema.String,
  op: Schema.String,
  payload: Schema.String
}

/** A row of what an append reads (see `readFacts`): the columns a kind does not use are null. */
const FactRow = Schema.Struct({
  kind: Int,
  seq: Int,
  client_id: Schema.NullOr(Schema.String),
  client_seq: Schema.NullOr(Int),
  project: Schema.NullOr(Schema.String),
  entity: Schema.NullOr(Schema.String),
  entity_key: Schema.NullOr(Schema.String),
  op: Schema.NullOr(Schema.String),
  payload: Schema.NullOr(Schema.String)
})

const StoredRow = Schema.Struct({ seq: Int, ...contentColumns, occurred_at: Int })

const CompactRow = Schema.Struct({ seq: Int, client_id: Schema.String, client_seq: Int, ...contentColumns })

const WatermarkRow = Schema.Struct({ client_id: Schema.String, acked_through: Int })
const CountRow = Schema.Struct({ n: Int })
const LastCompactionRow = Schema.Struct({ at: Int, removed: Int, duration_ms: Int })

const decodeLatest = Schema.decodeUnknown(Schema.Array(LatestRow))
const decodeCompact = Schema.decodeUnknown(Schema.Array(CompactRow))
const decodeWatermarks = Schema.decodeUnknown(Schema.Array(WatermarkRow))
const decodeCount = Schema.decodeUnknown(Schema.Tuple(CountRow))
const decodeLastCompaction = Schema.decodeUnknown(Schema.Array(LastCompactionRow))
const decodeFacts = Schema.decodeUnknown(Schema.Array(FactRow))
const decodeStoredStrictly = Schema.decodeUnknown(Schema.Array(StoredRow))

/** An int8 column's value as `Int` decodes it (a number, or PostgreSQL's decimal string), else undefined. */
const intOf = (u: unknown): number | undefined => {
  const n = typeof u === "string" && u !== "" ? Number(u) : u
  return typeof n === "number" && Number.isSafeInteger(n) ? n : undefined
}

const storedOf = (u: unknown): LogRules.StoredMutation | undefined => {
  if (typeof u !== "object" || u === null) return undefined
  const { entity, entity_key, occurred_at, op, payload, project, seq } = u as Record<string, unknown>
  const seqN = intOf(seq)
  const at = intOf(occurred_at)
  return seqN !== undefined && at !== undefined && typeof project === "string" && typeof entity === "string" &&
      typeof entity_key === "string" && typeof op === "string" && typeof payload === "string"
    ? { seq: seqN, project, entity, entityKey: entity_key, op, payloadJson: payload, occurredAt: at }
    : undefined
}

/**
 * A page's rows as stored mutations: checked in plain code (a page is up to a thousand rows); the
 * schema runs only to describe a row of another shape.
 */
const decodeStored = (
  rows: ReadonlyArray<unknown>
): Effect.Effect<Array<LogRules.StoredMutation>, ParseResult.ParseError> => {
  const stored: Array<LogRules.StoredMutation> = new Array(rows.length)
  for (let i = 0; i < rows.length; i++) {
    const row = storedOf(rows[i])
    if (row === undefined) {
      return Effect.map(decodeStoredStrictly(rows), (decoded) =>
        decoded.map((r) => ({
          seq: r.seq,
          project: r.project,
          entity: r.entity,
          entityKey: r.entity_key,
          op: r.op,
          payloadJson: r.payload,
          occurredAt: r.occurred_at
        })))
    }
    stored[i] = row
  }
  return Effect.succeed(stored)
}

/** Rows per INSERT (9 parameters each) and identities per IN list: under every dialect's limit. */
const chunkSize = 500

/** Runs a statement built with `sql` (so in the dialect's syntax) on one connection. */
type Run = (statement: Statement.Statement<unknown>) => Effect.Effect<ReadonlyArray<unknown>, SqlError>

/**
 * An append's statements run on its transaction's connection directly: each statement through
 * `sql` opens a span and a scope of its own (tens of µs, as much as SQLite takes to run it);
 * here it is compiled and executed, nothing more. (Outside a transaction they go through `sql`.)
 */
const onConnection = <A, E, R>(
  f: (run: Run) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R> =>
  Effect.flatMap(
    Effect.serviceOption(SqlClient.TransactionConnection),
    Option.match({
      onSome: ([connection]) => f(runOn(connection)),
      onNone: () => f((statement) => statement)
    })
  )

const runOn = (connection: SqlConnection.Connection): Run => (statement) => {
  const [text, params] = statement.compile()
  return connection.execute(text, params, undefined)
}

const storage = (what: string) => (cause: SqlError | ParseResult.ParseError | MutationLogError) =>
  cause._tag === "MutationLogError" ? cause : new MutationLogError({
    reason: "storage",
    message: `${what} failed: ${cause.message}`,
    cause
  })

const logWarning = (message: string, cause: unknown) =>
  Effect.logWarning(message, cause).pipe(Effect.annotateLogs({ package: "@autosync/server", module: "MutationLog" }))

/** An append waiting for the writer. */
interface Pending {
  readonly clientId: string
  readonly entries: ReadonlyArray<LogRules.StoredEntry>
  readonly ackedThrough: number | undefined
  readonly done: Deferred.Deferred<ReadonlyArray<number>, MutationLogError>
}

/** A row of `autosync_log` (a type, not an interface: `sql.insert` wants a record). */
type LogRow = {
  readonly seq: number
  readonly client_id: string
  readonly client_seq: number
  readonly project: string
  readonly entity: string
  readonly entity_key: string
  readonly op: string
  readonly payload: string
  readonly occurred_at: number
}

const identity = (clientId: string, clientSeq: number) => `${clientSeq}:${clientId}`

/** A stored identity; `compacted` when only the identity is left (its row was compacted away). */
type Known = LogRules.Identity & { readonly clientId: string; readonly clientSeq: number; readonly compacted: boolean }

/** The log's latest seq (0 when empty). */
const readLatestOf = (sql: SqlClient.SqlClient): Effect.Effect<number, SqlError | ParseResult.ParseError> =>
  sql`SELECT MAX(seq) AS latest FROM autosync_log`.pipe(
    Effect.flatMap(decodeLatest),
    Effect.map((rows) => rows[0]?.latest ?? 0)
  )

/** The watermarks (highest `acked_through`) of some clients; 0 for a client that never sent one. */
const selectWatermarks = (sql: SqlClient.SqlClient, clientIds: ReadonlyArray<string>) =>
  Effect.forEach(
    Arr.chunksOf(clientIds, chunkSize),
    (chunk) =>
      sql`SELECT client_id, acked_through FROM autosync_watermarks WHERE client_id IN ${sql.in(chunk)}`.pipe(
        Effect.flatMap(decodeWatermarks)
      )
  ).pipe(Effect.map((pages) => new Map(pages.flat().map((row) => [row.client_id, row.acked_through]))))

/** The most appends one transaction stores. */
const maxGroup = 64

/**
 * The log's latest seq as a `SubscriptionRef` (what long-polls wait on): raised by this process's
 * commits (`bump`), by hints from other processes, and by a slow poll in case one was missed (a
 * dropped LISTEN connection, a writer that does not announce), so waiters never hang on a stale value.
 * Only a raise is published: a hint or a poll that finds nothing new wakes no held pull. The poll
 * is housekeeping, so it is not traced, and it runs only while a pull is held (`awaitAfter` counts
 * them): a server without held pulls wakes for nothing.
 */
const watchLatest = (
  readLatest: Effect.Effect<number, SqlError | ParseResult.ParseError>,
  dialect: Dialect,
  options: Options
) =>
  Effect.gen(function*() {
    const latest = yield* SubscriptionRef.make(yield* Effect.mapError(readLatest, storage("reading the latest seq")))
    const bump = (n: number) =>
      Effect.flatMap(
        SubscriptionRef.get(latest),
        (current) => n > current ? SubscriptionRef.update(latest, (now) => Math.max(now, n)) : Effect.void
      )
    yield* dialect.hints.pipe(
      Stream.runForEach(bump),
      Effect.tapErrorCause((cause) => logWarning("listening for new seqs failed", cause)),
      Effect.retry(Schedule.spaced(Duration.seconds(1))),
      Effect.forkScoped
    )
    // The poll runs only while a pull is held (nobody else needs the latest seq between requests),
    // so a server without held pulls never wakes for it.
    const waiting = yield* SubscriptionRef.make(0)
    const poll = readLatest.pipe(
      Effect.flatMap(bump),
      Effect.catchAllCause((cause) => logWarning("reading the latest seq failed", cause)),
      Effect.withTracerEnabled(false),
      Effect.zipRight(SubscriptionRef.get(waiting))
    )
    const untilWaited = waiting.changes.pipe(Stream.filter((n) => n > 0), Stream.take(1), Stream.runDrain)
    yield* untilWaited.pipe(
      Effect.zipRight(
        poll.pipe(
          Effect.delay(options.pollInterval),
          Effect.repeat({ schedule: Schedule.spaced(options.pollInterval), while: (held) => held > 0 })
        )
      ),
      Effect.forever,
      Effect.forkScoped
    )
    const awaitAfter = (seq: number) =>
      Effect.acquireUseRelease(
        SubscriptionRef.update(waiting, (n) => n + 1),
        () => LogRules.awaitAbove(latest, seq),
        () => SubscriptionRef.update(waiting, (n) => n - 1)
      )
    return { awaitAfter, bump }
  })

/**
 * The body of one append transaction over a group: each append planned by the rules
 * (`LogRules.plan`), in queue order, against what is stored and what the appends before it in
 * the group store; the new rows inserted and announced. Outcomes are per append.
 */
const storeGroup = (
  sql: SqlClient.SqlClient,
  dialect: Dialect
) => {
  // An identity is its row's, or, once the row was compacted away, the one kept beside the log.
  const identitiesOf = (clientId: string, clientSeqs: ReadonlyArray<number>) => [
    sql`SELECT 0 AS kind, seq, client_id, client_seq, project, entity, entity_key, op, payload FROM autosync_log
      WHERE client_id = ${clientId} AND client_seq IN ${sql.in(clientSeqs)}`,
    sql`SELECT 1, seq, client_id, client_seq, project, entity, entity_key, op, payload FROM autosync_identities
      WHERE client_id = ${clientId} AND client_seq IN ${sql.in(clientSeqs)}`
  ]

  /**
   * What an append reads under the lock, in as few statements as the IN lists allow (one for a
   * group of up to 500 writes): the identities the group's writes were stored with before, the
   * watermarks of its clients, and the latest seq. Each round trip costs PostgreSQL a message
   * exchange, and every statement costs `@effect/sql` a compile and a decode.
   */
  const readFacts = (run: Run, group: ReadonlyArray<Pending>) =>
    Effect.gen(function*() {
      const wanted = new Map<string, Set<number>>()
      for (const { clientId, entries } of group) {
        const seqs = wanted.get(clientId) ?? new Set<number>()
        for (const entry of entries) seqs.add(entry.clientSeq)
        wanted.set(clientId, seqs)
      }
      const selects = [...wanted].flatMap(([clientId, seqs]) =>
        Arr.chunksOf([...seqs], chunkSize).map((chunk) => identitiesOf(clientId, chunk))
      )
      const first = [
        ...(selects[0] ?? []),
        // Named, for a group with no writes (only an acked_through), where this select comes first.
        sql`SELECT 2 AS kind, acked_through AS seq, client_id, NULL AS client_seq, NULL AS project, NULL AS entity,
          NULL AS entity_key, NULL AS op, NULL AS payload
          FROM autosync_watermarks WHERE client_id IN ${sql.in([...wanted.keys()])}`,
        sql`SELECT 3, COALESCE(MAX(seq), 0), NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM autosync_log`
      ]
      const known = new Map<string, Known>()
      const watermarks = new Map<string, number>()
      let latest = 0
      for (const parts of [first, ...selects.slice(1)]) {
        const rows = yield* run(sql`${sql.join(" UNION ALL ", false)(parts)}`).pipe(Effect.flatMap(decodeFacts))
        for (const row of rows) {
          if (row.kind === 3) latest = row.seq
          else if (row.kind === 2) watermarks.set(row.client_id ?? "", row.seq)
          else {
            const clientId = row.client_id ?? ""
            const clientSeq = row.client_seq ?? 0
            known.set(identity(clientId, clientSeq), {
              clientId,
              clientSeq,
              compacted: row.kind === 1,
              seq: row.seq,
              project: row.project ?? "",
              entity: row.entity ?? "",
              entityKey: row.entity_key ?? "",
              op: row.op ?? "",
              payloadJson: row.payload ?? ""
            })
          }
        }
      }
      return { known, watermarks, latest }
    })

  return (group: ReadonlyArray<Pending>, occurredAt: number) =>
    onConnection((run) =>
      Effect.gen(function*() {
        yield* run(dialect.lock)
        // Under the lock, so max(seq) + 1 is ours: gap-free, and in commit order. The new rows
        // get exactly these seqs (nothing else can insert meanwhile), so they are not read back.
        const facts = yield* readFacts(run, group)
        const { known, watermarks } = facts
        let latest = facts.latest
        const raised = new Map<string, number>()
        const rows: Array<LogRow> = []
        const outcomes = group.map(({ ackedThrough, clientId, entries }): ReadonlyArray<number> | MutationLogError => {
          const watermark = watermarks.get(clientId) ?? 0
          const planned = LogRules.plan(clientId, entries, (s) => known.get(identity(clientId, s)), latest, watermark)
          if (Either.isLeft(planned)) return fromConflict(planned.left)
          if (ackedThrough !== undefined && ackedThrough > watermark) {
            watermarks.set(clientId, ackedThrough)
            raised.set(clientId, ackedThrough)
            // Forgotten at commit: the appends after it in the group see them gone too.
            for (const [k, id] of known) {
              if (id.clientId === clientId && id.compacted && !LogRules.keepsIdentity(id.clientSeq, ackedThrough)) {
                known.delete(k)
              }
            }
          }
          for (const fresh of planned.right.fresh) {
            known.set(identity(clientId, fresh.clientSeq), { ...fresh, clientId, compacted: false })
            rows.push({
              seq: fresh.seq,
              client_id: clientId,
              client_seq: fresh.clientSeq,
              project: fresh.project,
              entity: fresh.entity,
              entity_key: fresh.entityKey,
              op: fresh.op,
              payload: fresh.payloadJson,
              occurred_at: occurredAt
            })
          }
          latest += planned.right.fresh.length
          return planned.right.seqs
        })
        for (const chunk of Arr.chunksOf(rows, chunkSize)) {
          yield* run(sql`INSERT INTO autosync_log ${sql.insert(chunk)}`)
        }
        for (const [clientId, ackedThrough] of raised) {
          yield* run(
            sql`INSERT INTO autosync_watermarks (client_id, acked_through) VALUES (${clientId}, ${ackedThrough})
          ON CONFLICT (client_id) DO UPDATE SET acked_through = excluded.acked_through`
          )
          yield* run(
            sql`DELETE FROM autosync_identities WHERE client_id = ${clientId} AND client_seq <= ${ackedThrough}`
          )
        }
        if (rows.length > 0 && dialect.announce !== undefined) yield* run(dialect.announce(latest))
        return { announced: rows.length > 0 ? latest : undefined, outcomes }
      })
    )
}

/**
 * The writer: appends queue up and one fiber stores everything waiting in one transaction (one
 * lock, one identity lookup per client, one insert per 500 rows, one announcement, one commit),
 * with exactly the outcome each append would have had alone, in queue order. While a transaction
 * runs the next group gathers, so an idle log adds no delay.
 */
const makeWriter = (
  sql: SqlClient.SqlClient,
  dialect: Dialect,
  bump: (latest: number) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const store = storeGroup(sql, dialect)
    const writeGroup = (group: ReadonlyArray<Pending>) =>
      Effect.gen(function*() {
        const occurredAt = yield* Clock.currentTimeMillis
        const { announced, outcomes } = yield* sql.withTransaction(store(group, occurredAt))
        if (announced !== undefined) yield* bump(announced)
        yield* Effect.forEach(group, ({ done }, i) => {
          const outcome = outcomes[i]
          return outcome instanceof MutationLogError ? Deferred.fail(done, outcome) : Deferred.succeed(done, outcome)
        }, { discard: true })
      }).pipe(
        // The whole group failed (storage): each of its appends fails with that error.
        Effect.catchAllCause((cause) => {
          const error = Cause.failureOption(cause).pipe(
            Option.map(storage("append")),
            Option.getOrElse(() =>
              new MutationLogError({
                reason: "storage",
                message: `append failed: ${Cause.pretty(cause).split("\n")[0]}`
              })
            )
          )
          return Effect.forEach(group, ({ done }) => Deferred.fail(done, error), { discard: true })
        })
      )

    const queue = yield* Queue.unbounded<Pending>()
    // A group once taken is written to the end, even when the log is closing.
    yield* Queue.takeBetween(queue, 1, maxGroup).pipe(
      Effect.flatMap((group) =>
        writeGroup(Chunk.toReadonlyArray(group)).pipe(
          Effect.withSpan("MutationLog.writeGroup", {
            attributes: { appends: group.length },
            captureStackTrace: false
          }),
          Effect.uninterruptible
        )
      ),
      Effect.forever,
      Effect.forkScoped
    )
    // Appends still waiting when the log closes fail instead of hanging; later ones are refused.
    yield* Effect.addFinalizer(() =>
      Queue.takeAll(queue).pipe(
        Effect.flatMap((left) =>
          Effect.forEach(
            left,
            ({ done }) =>
              Deferred.fail(done, new MutationLogError({ reason: "storage", message: "the log is closed" })),
            { discard: true }
          )
        ),
        Effect.zipRight(Queue.shutdown(queue))
      )
    )

    return (clientId: string, entries: ReadonlyArray<Mutation.MutationEntry>, ackedThrough?: number) =>
      Effect.gen(function*() {
        if (entries.length === 0 && ackedThrough === undefined) return []
        // Payloads are serialised here, off the writer's transaction.
        const done = yield* Deferred.make<ReadonlyArray<number>, MutationLogError>()
        yield* Queue.offer(queue, { clientId, entries: LogRules.encodeEntries(entries), ackedThrough, done })
        return yield* Deferred.await(done)
      })
  })

/** The reader: a page is the rules' `page` over the candidates SQL selects. */
const makeReader = (
  sql: SqlClient.SqlClient,
  readLatest: Effect.Effect<number, SqlError | ParseResult.ParseError>
) =>
(
  sinceSeq: number,
  projects: ReadonlyArray<string> | undefined,
  limit: number,
  excludeClientId?: string
): Effect.Effect<LogRules.StoredPage, MutationLogError> =>
  Effect.gen(function*() {
    // The latest seq first: every seq up to it is committed, so it never runs ahead of the page.
    const latestSeq = yield* readLatest
    // No project allowed: nothing to select (and `IN ()` is not SQL).
    if (projects !== undefined && projects.length === 0) return LogRules.page([], limit, latestSeq)
    // The candidates: after the cursor, of the projects, less the writes of excludeClientId.
    const candidates = yield* sql`SELECT seq, project, entity, entity_key, op, payload, occurred_at
      FROM autosync_log WHERE seq > ${sinceSeq}
        ${projects === undefined ? sql`` : sql`AND project IN ${sql.in(projects)}`}
        ${excludeClientId === undefined ? sql`` : sql`AND client_id <> ${excludeClientId}`}
      ORDER BY seq LIMIT ${limit + 1}`.pipe(Effect.flatMap(decodeStored))
    return LogRules.page(candidates, limit, latestSeq)
  }).pipe(Effect.mapError(storage("reading the log")))

// A row of which a newer row of the same key exists: the rule of `LogRules.compactable`. Only
// such rows are removed, so the newest version of every key stays, and a puller at any cursor,
// between any two compaction transactions, still finds it (or has it already).
const hasNewer = (sql: SqlClient.SqlClient) =>
  sql`EXISTS (SELECT 1 FROM autosync_log n WHERE n.project = l.project AND n.entity = l.entity
    AND n.entity_key = l.entity_key AND n.seq > l.seq)`

/**
 * Compaction: batches of at most `batchSize` superseded rows, each in its own transaction under
 * the append lock (so appends wait at most one batch, and several processes on one database
 * take turns), walking the log once from the start to the latest seq it had when it started.
 * Rows superseded behind its cursor meanwhile are left to the next run.
 */
const makeCompactor = (
  sql: SqlClient.SqlClient,
  dialect: Dialect,
  readLatest: Effect.Effect<number, SqlError | ParseResult.ParseError>
) => {
  const batch = (after: number, upTo: number, batchSize: number) =>
    Effect.gen(function*() {
      yield* dialect.lock
      const rows =
        yield* sql`SELECT l.seq, l.client_id, l.client_seq, l.project, l.entity, l.entity_key, l.op, l.payload
        FROM autosync_log l WHERE l.seq > ${after} AND l.seq <= ${upTo} AND ${hasNewer(sql)}
        ORDER BY l.seq LIMIT ${batchSize}`.pipe(Effect.flatMap(decodeCompact))
      const end = rows.length < batchSize ? upTo : rows[rows.length - 1].seq
      const watermarks = yield* selectWatermarks(sql, [
        ...new Set(rows.map((row) => row.client_id))
      ])
      // The identities a retry may still need: above their client's watermark.
      const kept = rows.filter((row) => LogRules.keepsIdentity(row.client_seq, watermarks.get(row.client_id) ?? 0))
      for (const chunk of Arr.chunksOf(kept, chunkSize)) {
        yield* sql`INSERT INTO autosync_identities ${
          sql.insert(chunk.map((row) => ({
            client_id: row.client_id,
            client_seq: row.client_seq,
            seq: row.seq,
            project: row.project,
            entity: row.entity,
            entity_key: row.entity_key,
            op: row.op,
            payload: row.payload
          })))
        }`
      }
      for (const chunk of Arr.chunksOf(rows.map((row) => row.seq), chunkSize)) {
        yield* sql`DELETE FROM autosync_log WHERE seq IN ${sql.in(chunk)}`
      }
      // The deletes of the range that stay are tombstones: their payload is dropped.
      const dropped = yield* sql`UPDATE autosync_log SET payload = ${LogRules.tombstonePayload}
        WHERE op = ${LogRules.deleteOp} AND payload <> ${LogRules.tombstonePayload}
          AND seq > ${after} AND seq <= ${end} RETURNING seq`
      return { end, removed: rows.length, identitiesKept: kept.length, tombstonesDropped: dropped.length }
    })

  return (options?: { readonly batchSize?: number | undefined }) =>
    Effect.gen(function*() {
      const started = yield* Clock.currentTimeMillis
      const batchSize = Math.max(1, options?.batchSize ?? LogRules.defaultCompactionBatch)
      const upTo = yield* readLatest
      let after = 0
      const total = { removed: 0, identitiesKept: 0, tombstonesDropped: 0 }
      while (after < upTo) {
        const done = yield* sql.withTransaction(batch(after, upTo, batchSize))
        after = done.end
        total.removed += done.removed
        total.identitiesKept += done.identitiesKept
        total.tombstonesDropped += done.tombstonesDropped
      }
      const at = yield* Clock.currentTimeMillis
      yield* sql`INSERT INTO autosync_compaction (id, at, removed, duration_ms) VALUES (1, ${at}, ${total.removed}, ${
        at - started
      })
        ON CONFLICT (id) DO UPDATE SET at = excluded.at, removed = excluded.removed, duration_ms = excluded.duration_ms`
      return { ...total, durationMs: at - started }
    }).pipe(Effect.mapError(storage("compaction")), Effect.withSpan("MutationLog.compact"))
}

const count = (query: Effect.Effect<ReadonlyArray<unknown>, SqlError>) =>
  query.pipe(Effect.flatMap(decodeCount), Effect.map(([row]) => row.n))

/** The log's rows and latest seq: one `COUNT(*)` (no keys counted), for every scrape. */
const readSize = (
  sql: SqlClient.SqlClient,
  readLatest: Effect.Effect<number, SqlError | ParseResult.ParseError>
): Effect.Effect<LogRules.LogSize, SqlError | ParseResult.ParseError> =>
  Effect.all({ rows: count(sql`SELECT COUNT(*) AS n FROM autosync_log`), latestSeq: readLatest })

/** The log's size, counted (see `LogRules.LogStats`). */
const readStats = (
  sql: SqlClient.SqlClient,
  readLatest: Effect.Effect<number, SqlError | ParseResult.ParseError>
): Effect.Effect<LogRules.LogStats, MutationLogError> =>
  Effect.gen(function*() {
    const { latestSeq, rows } = yield* readSize(sql, readLatest)
    const keys = yield* count(
      sql`SELECT COUNT(*) AS n FROM (SELECT DISTINCT project, entity, entity_key FROM autosync_log) k`
    )
    const tombstones = yield* count(
      sql`SELECT COUNT(*) AS n FROM autosync_log l WHERE l.op = ${LogRules.deleteOp} AND NOT ${hasNewer(sql)}`
    )
    const identities = yield* count(sql`SELECT COUNT(*) AS n FROM autosync_identities`)
    const last = yield* sql`SELECT at, removed, duration_ms FROM autosync_compaction WHERE id = 1`.pipe(
      Effect.flatMap(decodeLastCompaction)
    )
    return {
      rows,
      liveKeys: Math.max(0, keys - tombstones),
      tombstones,
      superseded: Math.max(0, rows - keys),
      latestSeq,
      identities,
      lastCompaction: last.length === 0
        ? undefined
        : { at: last[0].at, removed: last[0].removed, durationMs: last[0].duration_ms }
    }
  }).pipe(Effect.mapError(storage("reading the log's stats")))

/**
 * The stats of the log behind the `SqlClient` in context, read without writing (for `autosync
 * status` on a server's database).
 *
 * @internal
 */
export const statsOf: Effect.Effect<LogRules.LogStats, MutationLogError, SqlClient.SqlClient> = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => readStats(sql, readLatestOf(sql))
)

/** @internal */
export const make = (
  dialect: Dialect,
  options: Options
): Effect.Effect<MutationLog["Type"], MutationLogError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const readLatest = readLatestOf(sql)
    const { awaitAfter, bump } = yield* watchLatest(readLatest, dialect, options)
    const append = yield* makeWriter(sql, dialect, bump)
    const sinceStored = makeReader(sql, readLatest)
    return MutationLog.of({
      append,
      since: (sinceSeq, projects, limit, excludeClientId) =>
        Effect.map(sinceStored(sinceSeq, projects, limit, excludeClientId), LogRules.toPullResponse),
      sinceStored,
      latestSeq: Effect.mapError(readLatest, storage("reading the latest seq")),
      awaitAfter,
      compact: makeCompactor(sql, dialect, readLatest),
      stats: readStats(sql, readLatest),
      size: Effect.mapError(readSize(sql, readLatest), storage("reading the log's size"))
    })
  })
