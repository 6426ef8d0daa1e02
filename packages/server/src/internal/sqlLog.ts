/**
 * The `MutationLog` over `@effect/sql`, shared by the SQLite and PostgreSQL backends. The rules
 * are core's `LogRules` (`plan` decides what an append stores, `page` cuts a pull's page,
 * `awaitAbove` holds a long-poll); this module only stores them. What differs between the two
 * databases comes in as a `Dialect`: how seq assignment is serialised, how other processes are
 * told about new seqs, and how this process hears about theirs (feeding the same latest-seq
 * `SubscriptionRef` the long-polls wait on). Appends are group-committed: one writer fiber stores
 * all the appends waiting, in one transaction.
 */
import type { Mutation } from "@autosync/core"
import { LogRules } from "@autosync/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
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
  readonly lock: Effect.Effect<void, SqlError>
  /** Runs in the append transaction when it stored something; `latest` is the new last seq. */
  readonly announce: (latest: number) => Effect.Effect<void, SqlError>
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

const IdentityRow = Schema.Struct({
  seq: Int,
  client_seq: Int,
  project: Schema.String,
  entity: Schema.String,
  entity_key: Schema.String,
  op: Schema.String,
  payload: Schema.String
})

const StoredRow = Schema.Struct({
  seq: Int,
  project: Schema.String,
  entity: Schema.String,
  entity_key: Schema.String,
  op: Schema.String,
  payload: Schema.String,
  occurred_at: Int
})

const decodeLatest = Schema.decodeUnknown(Schema.Array(LatestRow))
const decodeIdentities = Schema.decodeUnknown(Schema.Array(IdentityRow))
const decodeStored = Schema.decodeUnknown(Schema.Array(StoredRow))

/** Rows per INSERT (9 parameters each) and identities per IN list: under every dialect's limit. */
const chunkSize = 500

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

/** The most appends one transaction stores. */
const maxGroup = 64

/**
 * The log's latest seq as a `SubscriptionRef` (what long-polls wait on): raised by this process's
 * commits (`bump`), by hints from other processes, and by a slow poll in case one was missed (a
 * dropped LISTEN connection, a writer that does not announce), so waiters never hang on a stale value.
 */
const watchLatest = (
  readLatest: Effect.Effect<number, SqlError | ParseResult.ParseError>,
  dialect: Dialect,
  options: Options
) =>
  Effect.gen(function*() {
    const latest = yield* SubscriptionRef.make(yield* Effect.mapError(readLatest, storage("reading the latest seq")))
    const bump = (n: number) => SubscriptionRef.update(latest, (current) => Math.max(current, n))
    yield* dialect.hints.pipe(
      Stream.runForEach(bump),
      Effect.tapErrorCause((cause) => logWarning("listening for new seqs failed", cause)),
      Effect.retry(Schedule.spaced(Duration.seconds(1))),
      Effect.forkScoped
    )
    yield* readLatest.pipe(
      Effect.flatMap(bump),
      Effect.catchAllCause((cause) => logWarning("reading the latest seq failed", cause)),
      Effect.repeat(Schedule.spaced(options.pollInterval)),
      Effect.forkScoped
    )
    return { latest, bump }
  })

/**
 * The body of one append transaction over a group: each append planned by the rules
 * (`LogRules.plan`), in queue order, against what is stored and what the appends before it in
 * the group store; the new rows inserted and announced. Outcomes are per append.
 */
const storeGroup = (
  sql: SqlClient.SqlClient,
  dialect: Dialect,
  readLatest: Effect.Effect<number, SqlError | ParseResult.ParseError>
) => {
  const selectIdentities = (clientId: string, clientSeqs: ReadonlyArray<number>) =>
    Effect.forEach(
      Arr.chunksOf(clientSeqs, chunkSize),
      (chunk) =>
        sql`SELECT seq, client_seq, project, entity, entity_key, op, payload FROM autosync_log
          WHERE client_id = ${clientId} AND client_seq IN ${sql.in(chunk)}`.pipe(
          Effect.flatMap(decodeIdentities)
        )
    ).pipe(Effect.map((pages) => pages.flat()))

  // What the group's identities were stored with, before it.
  const storedIdentities = (group: ReadonlyArray<Pending>) =>
    Effect.gen(function*() {
      const wanted = new Map<string, Set<number>>()
      for (const { clientId, entries } of group) {
        const seqs = wanted.get(clientId) ?? new Set<number>()
        for (const entry of entries) seqs.add(entry.clientSeq)
        wanted.set(clientId, seqs)
      }
      const known = new Map<string, LogRules.Identity>()
      for (const [clientId, clientSeqs] of wanted) {
        for (const row of yield* selectIdentities(clientId, [...clientSeqs])) {
          known.set(identity(clientId, row.client_seq), {
            seq: row.seq,
            project: row.project,
            entity: row.entity,
            entityKey: row.entity_key,
            op: row.op,
            payloadJson: row.payload
          })
        }
      }
      return known
    })

  return (group: ReadonlyArray<Pending>, occurredAt: number) =>
    Effect.gen(function*() {
      yield* dialect.lock
      const known = yield* storedIdentities(group)
      // Under the lock, so max(seq) + 1 is ours: gap-free, and in commit order. The new rows
      // get exactly these seqs (nothing else can insert meanwhile), so they are not read back.
      let latest = yield* readLatest
      const rows: Array<LogRow> = []
      const outcomes = group.map(({ clientId, entries }): ReadonlyArray<number> | MutationLogError => {
        const planned = LogRules.plan(clientId, entries, (s) => known.get(identity(clientId, s)), latest)
        if (Either.isLeft(planned)) return fromConflict(planned.left)
        for (const fresh of planned.right.fresh) {
          known.set(identity(clientId, fresh.clientSeq), fresh)
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
        yield* sql`INSERT INTO autosync_log ${sql.insert(chunk)}`
      }
      if (rows.length > 0) yield* dialect.announce(latest)
      return { announced: rows.length > 0 ? latest : undefined, outcomes }
    })
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
  readLatest: Effect.Effect<number, SqlError | ParseResult.ParseError>,
  bump: (latest: number) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const store = storeGroup(sql, dialect, readLatest)
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
          Effect.withSpan("MutationLog.writeGroup", { attributes: { appends: group.length } }),
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

    return (clientId: string, entries: ReadonlyArray<Mutation.MutationEntry>) =>
      Effect.gen(function*() {
        if (entries.length === 0) return []
        // Payloads are serialised here, off the writer's transaction.
        const done = yield* Deferred.make<ReadonlyArray<number>, MutationLogError>()
        yield* Queue.offer(queue, { clientId, entries: LogRules.encodeEntries(entries), done })
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
    const rows = yield* sql`SELECT seq, project, entity, entity_key, op, payload, occurred_at FROM autosync_log
      WHERE seq > ${sinceSeq}
        ${projects === undefined ? sql`` : sql`AND project IN ${sql.in(projects)}`}
        ${excludeClientId === undefined ? sql`` : sql`AND client_id <> ${excludeClientId}`}
      ORDER BY seq LIMIT ${limit + 1}`.pipe(Effect.flatMap(decodeStored))
    const candidates = rows.map((row): LogRules.StoredMutation => ({
      seq: row.seq,
      project: row.project,
      entity: row.entity,
      entityKey: row.entity_key,
      op: row.op,
      payloadJson: row.payload,
      occurredAt: row.occurred_at
    }))
    return LogRules.page(candidates, limit, latestSeq)
  }).pipe(Effect.mapError(storage("reading the log")))

/** @internal */
export const make = (
  dialect: Dialect,
  options: Options
): Effect.Effect<MutationLog["Type"], MutationLogError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const readLatest = sql`SELECT MAX(seq) AS latest FROM autosync_log`.pipe(
      Effect.flatMap(decodeLatest),
      Effect.map((rows) => rows[0]?.latest ?? 0)
    )
    const { bump, latest } = yield* watchLatest(readLatest, dialect, options)
    const append = yield* makeWriter(sql, dialect, readLatest, bump)
    const sinceStored = makeReader(sql, readLatest)
    return MutationLog.of({
      append,
      since: (sinceSeq, projects, limit, excludeClientId) =>
        Effect.map(sinceStored(sinceSeq, projects, limit, excludeClientId), LogRules.toPullResponse),
      sinceStored,
      latestSeq: Effect.mapError(readLatest, storage("reading the latest seq")),
      rowCount: sql`SELECT COUNT(*) AS n FROM autosync_log`.pipe(
        Effect.map((rows) => Number(rows[0]?.n ?? 0)),
        Effect.mapError(storage("counting the log's rows"))
      ),
      awaitAfter: (seq) => LogRules.awaitAbove(latest, seq)
    })
  })
