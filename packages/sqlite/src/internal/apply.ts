/**
 * Pulled mutations on SQLite: the facts `Merge` decides on are looked up with one query per
 * page, and its decisions carried out set-wise (a page in a few statements) or, when something
 * in the page fails, one mutation at a time. Also the kept-aside rows an ack settles, and the
 * dead letters.
 *
 * Only pulled mutations kept aside are journalled (`status = 'kept_aside'`, `Merge.keepsPulled`),
 * until an ack settles them: then they are applied or discarded, and deleted. The facts on our
 * own acked writes (`sync_key_facts`) the cursor has passed are deleted as it moves.
 *
 * @internal
 */
import { LocalStore, Merge, Mutation } from "@autosync/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Applier from "../Applier.js"
import type { Db } from "./db.js"
import {
  changeOf,
  DeadLetterRow,
  decodePulled,
  decodePulledEither,
  decodeSuperseding,
  KeptAsideRow,
  KeyRow,
  mutationJson,
  parseJsonOrUndefined,
  PulledShape
} from "./rows.js"

type Pulled = Mutation.PulledMutation

const remoteRow = (targetKey: string, m: Pulled, status: string) => ({
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

const insertDeadLetter = (db: Db, targetKey: string, seq: number, reason: string, mutation: unknown, at: number) =>
  db.sql`INSERT INTO sync_dead_letters (target_key, seq, reason, mutation, created_at)
    VALUES (${targetKey}, ${seq}, ${reason}, ${mutationJson(mutation)}, ${at})`

const keepAside = (db: Db, targetKey: string, m: Pulled) =>
  db.sql`INSERT INTO sync_mutations ${db.sql.insert(remoteRow(targetKey, m, "kept_aside"))}`

/**
 * Applies a pulled mutation through its applier in a savepoint: a rejection rolls back the
 * applier's writes only and dead-letters the mutation.
 */
const applyRemote = (db: Db, targetKey: string, m: Pulled, at: number) =>
  db.sql.withTransaction(
    db.appliers.get(m.entity).apply(changeOf(m, targetKey, "remote", m.seq)).pipe(
      Effect.provideService(SqlClient.SqlClient, db.sql)
    )
  ).pipe(
    Effect.as("applied" as const),
    Effect.catchTag("ApplyRejected", (rejected) =>
      Effect.as(insertDeadLetter(db, targetKey, m.seq, rejected.reason, m, at), "dead_letter" as const))
  )

const checkShape = Schema.decodeUnknownEither(PulledShape)
const isSeq = Schema.is(PulledShape.fields.seq)
const isDate = Schema.is(PulledShape.fields.occurredAt)
const isText = (s: unknown, what: string) => typeof s === "string" && Mutation.textProblem(s, what) === undefined

// Field by field, with the rules `PulledShape`'s schemas apply (the text fields' is
// `Mutation.textProblem`), without building the decoded copy (a page checks a thousand); the
// decode runs only to describe a problem.
const hasShape = (m: Pulled) =>
  typeof m === "object" && m !== null && isSeq(m.seq) && isText(m.project, "project") &&
  isText(m.entity, "entity") && isText(m.entityKey, "entity_key") && isText(m.op, "op") && isDate(m.occurredAt)

/** Why a pulled mutation must go to the dead letters, or `undefined`. */
const problemOf = (db: Db, m: Pulled): string | undefined => {
  if (!hasShape(m)) {
    const shape = checkShape(m)
    if (Either.isLeft(shape)) return `invalid mutation: ${ParseResult.TreeFormatter.formatErrorSync(shape.left)}`
  }
  return db.appliers.get(m.entity).validate(m) ??
    (m.payload === undefined ? undefined : Mutation.payloadProblem(m.payload))
}

const keySet = (rows: ReadonlyArray<typeof KeyRow.Type>) =>
  new Set(rows.map((r) => Merge.keyOf({ project: r.project, entity: r.entity, entityKey: r.entity_key })))

const decodeKeyRows = Schema.decodeUnknown(Schema.Array(KeyRow))

// The page's entity keys as one JSON array: one bound value and one statement text whatever the
// page's size (an `IN (?, ?, …)` list is compiled per call and prepared, and cached, per length).
const pageKeys = (mutations: ReadonlyArray<Pulled>) => JSON.stringify([...new Set(mutations.map((m) => m.entityKey))])

// The keys among `mutations` that have un-acked local writes: one query per page. Nothing can
// change that set while the page's write transaction holds the lock.
const unackedKeys = (db: Db, targetKey: string, mutations: ReadonlyArray<Pulled>) =>
  db.sql`SELECT DISTINCT project, entity, entity_key FROM sync_mutations
    WHERE target_key = ${targetKey} AND source = 'local' AND acked_at IS NULL
      AND entity_key IN (SELECT value FROM json_each(${pageKeys(mutations)}))`.pipe(
    Effect.flatMap(decodeKeyRows),
    Effect.map(keySet)
  )

// For the page's keys, the server seq of our newest acked write when above the page's first
// seq: none lower can supersede a mutation of the page past the cursor.
const ownAckedSeqs = (db: Db, targetKey: string, mutations: ReadonlyArray<Pulled>) =>
  db.sql`SELECT project, entity, entity_key, own_acked_seq AS n FROM sync_key_facts
    WHERE target_key = ${targetKey}
      AND entity_key IN (SELECT value FROM json_each(${pageKeys(mutations)}))
      AND own_acked_seq > ${mutations[0].seq}`.pipe(
    Effect.flatMap(decodeSuperseding),
    Effect.map((rows) =>
      new Map(rows.map((r) => [Merge.keyOf({ project: r.project, entity: r.entity, entityKey: r.entity_key }), r.n]))
    )
  )

/** The page's decisions from the facts looked up in three queries; the cursor before and after it. */
const decide = (db: Db, targetKey: string, mutations: ReadonlyArray<Pulled>) =>
  Effect.gen(function*() {
    const lastPulledSeq = yield* db.lastPulledSeq(targetKey)
    const unacked = yield* unackedKeys(db, targetKey, mutations)
    const ownAcked = yield* ownAckedSeqs(db, targetKey, mutations)
    const decided = Merge.decidePage(mutations, lastPulledSeq, (m) => {
      const key = Merge.keyOf(m)
      return { problem: problemOf(db, m), hasUnackedWrite: unacked.has(key), ownAckedSeq: ownAcked.get(key) ?? 0 }
    })
    return { ...decided, lastPulledSeq }
  })

// The cursor, and the facts it has passed forgotten (`Merge.keepsOwnAckedSeq`, as SQL).
const writeCursor = (db: Db, targetKey: string, cursor: number, at: number) =>
  Effect.all([
    db.touchState(targetKey, at),
    db.sql`UPDATE sync_state SET last_pulled_seq = MAX(last_pulled_seq, ${cursor}) WHERE target_key = ${targetKey}`,
    db.sql`DELETE FROM sync_key_facts WHERE target_key = ${targetKey} AND own_acked_seq <= ${cursor}`
  ], { discard: true })

/**
 * The whole page in a few statements, for a page where nothing fails: the applies batched per
 * applier, the journal rows in one insert, the cursor written once.
 */
const applyPageAtOnce = (db: Db, targetKey: string, mutations: ReadonlyArray<Pulled>, at: number) =>
  Effect.gen(function*() {
    const { cursor, results } = yield* decide(db, targetKey, mutations)
    const rows: Array<ReturnType<typeof remoteRow>> = []
    const changes: Array<Applier.Change> = []
    for (let i = 0; i < mutations.length; i++) {
      const m = mutations[i]
      const result = results[i]
      if (result === "duplicate") continue
      if (result === "dead_letter") yield* insertDeadLetter(db, targetKey, m.seq, problemOf(db, m) ?? "", m, at)
      else if (Merge.keepsPulled(result)) rows.push(remoteRow(targetKey, m, result))
      if (result === "applied") changes.push(changeOf(m, targetKey, "remote", m.seq))
    }
    yield* Applier.applyAll(db.appliers, changes).pipe(Effect.provideService(SqlClient.SqlClient, db.sql))
    for (const chunk of Applier.inChunks(rows)) yield* db.sql`INSERT INTO sync_mutations ${db.sql.insert(chunk)}`
    yield* writeCursor(db, targetKey, cursor, at)
    return results
  })

/** Carries out one decision (not a duplicate); runs inside the caller's savepoint. */
const carryOut = (
  db: Db,
  targetKey: string,
  m: Pulled,
  decision: Exclude<Mutation.ApplyResult, "duplicate">,
  at: number
) =>
  Effect.gen(function*() {
    if (decision === "dead_letter") {
      yield* insertDeadLetter(db, targetKey, m.seq, problemOf(db, m) ?? "", m, at)
      return decision
    }
    const result = decision === "applied" ? yield* applyRemote(db, targetKey, m, at) : decision
    if (Merge.keepsPulled(result)) yield* keepAside(db, targetKey, m)
    return result
  })

/**
 * The same decisions one mutation at a time, each in a savepoint: records dead letters
 * precisely and keeps the mutations before a failure, with the cursor at the last of them.
 */
const applyOneByOne = (db: Db, targetKey: string, mutations: ReadonlyArray<Pulled>, at: number) =>
  Effect.gen(function*() {
    const decided = yield* decide(db, targetKey, mutations)
    let cursor = decided.lastPulledSeq
    const results: Array<Mutation.ApplyResult> = []
    let failure = Option.none<SqlError>()
    for (const [i, m] of mutations.entries()) {
      const decision = decided.results[i]
      if (decision === "duplicate") {
        results.push(decision)
        continue
      }
      const done = yield* Effect.either(db.sql.withTransaction(carryOut(db, targetKey, m, decision, at)))
      if (Either.isLeft(done)) {
        failure = Option.some(done.left)
        break
      }
      results.push(done.right)
      cursor = m.seq
    }
    yield* writeCursor(db, targetKey, cursor, at)
    return [results, failure] as const
  })

// A page at once in a savepoint; if anything in it fails (an applier refuses, a statement
// fails), that is rolled back and the page goes one mutation at a time.
const applyPage = (db: Db, targetKey: string, mutations: ReadonlyArray<Pulled>, at: number) =>
  Effect.flatMap(
    Effect.either(db.sql.withTransaction(applyPageAtOnce(db, targetKey, mutations, at))),
    (atOnce) =>
      Either.isRight(atOnce)
        ? Effect.succeed([atOnce.right, Option.none<SqlError>()] as const)
        : applyOneByOne(db, targetKey, mutations, at)
  )

const applyPulledMutations = (db: Db) =>
  Effect.fn("SqliteLocalStore.applyPulledMutations")(function*(
    targetKey: string,
    mutations: ReadonlyArray<Pulled>,
    options?: LocalStore.ApplyPageOptions
  ) {
    const through = options?.throughSeq
    const problem = Merge.pageProblem(mutations, through)
    if (problem !== undefined) {
      return yield* new LocalStore.LocalStoreError({ reason: "invalid_input", message: problem })
    }
    if (mutations.length === 0 && through === undefined) return []
    const at = yield* db.now
    const [results, failure] = yield* db.writeTransaction(Effect.gen(function*() {
      const applied = mutations.length === 0
        ? [[], Option.none<SqlError>()] as const
        : yield* applyPage(db, targetKey, mutations, at)
      if (through !== undefined && Option.isNone(applied[1])) {
        yield* writeCursor(db, targetKey, through, at) // never back: see Merge.cursorAfter
      }
      return applied
    })).pipe(Effect.mapError(db.fail("applying pulled mutations")))
    yield* db.reclaim
    if (Option.isSome(failure)) return yield* db.fail("applying a pulled mutation")(failure.value)
    return results
  })

/** The keys that hold kept-aside mutations: one query, usually finding none. */
const keptAsideKeys = (db: Db, targetKey: string) =>
  db.sql`SELECT DISTINCT project, entity, entity_key FROM sync_mutations
    WHERE target_key = ${targetKey} AND source = 'remote' AND status = 'kept_aside'`.pipe(
    Effect.flatMap(decodeKeyRows),
    Effect.map(keySet)
  )

const hasUnacked = (db: Db, targetKey: string, key: Merge.Key) =>
  Effect.map(
    db.count(db.sql`SELECT COUNT(*) AS n FROM sync_mutations
      WHERE target_key = ${targetKey} AND source = 'local' AND acked_at IS NULL
        AND project = ${key.project} AND entity = ${key.entity} AND entity_key = ${key.entityKey}`),
    (n) => n > 0
  )

/** Applies a kept-aside row that `Merge.settle` let through: decoded again, then applied. */
const applyKeptAside = (db: Db, targetKey: string, row: typeof KeptAsideRow.Type, at: number) =>
  Effect.gen(function*() {
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
      const reason = `kept-aside row could not be decoded: ${ParseResult.TreeFormatter.formatErrorSync(decoded.left)}`
      yield* insertDeadLetter(db, targetKey, row.seq, reason, row, at)
      return "dead_letter" as const
    }
    return yield* applyRemote(db, targetKey, decoded.right, at)
  })

/**
 * After an ack (inside its transaction): settles the kept-aside mutations of the acked rows'
 * keys as `Merge.settle` says, each key with the highest server seq acked for it.
 *
 * @internal
 */
export const settleKeptAside = (
  db: Db,
  targetKey: string,
  acked: ReadonlyArray<{ readonly key: Merge.Key; readonly serverSeq: number | undefined }>,
  at: number
) =>
  Effect.gen(function*() {
    const held = yield* keptAsideKeys(db, targetKey)
    if (held.size === 0) return
    for (const [k, { key, serverSeq }] of Merge.ackedSeqByKey(acked)) {
      if (!held.has(k)) continue
      const rows = yield* db.sql`SELECT id, seq, project, entity, entity_key, op, payload, occurred_at
        FROM sync_mutations
        WHERE target_key = ${targetKey} AND source = 'remote' AND status = 'kept_aside'
          AND project = ${key.project} AND entity = ${key.entity} AND entity_key = ${key.entityKey}`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(KeptAsideRow)))
      )
      const settled = Merge.settle(rows, {
        ackedSeq: serverSeq,
        hasUnackedWrite: yield* hasUnacked(db, targetKey, key)
      })
      for (const row of settled.apply) yield* applyKeptAside(db, targetKey, row, at)
      // Settled: applied (or dead-lettered) and discarded rows leave the journal.
      for (const chunk of Applier.inChunks([...settled.discard, ...settled.apply].map((r) => r.id))) {
        yield* db.sql`DELETE FROM sync_mutations WHERE id IN ${db.sql.in(chunk)}`
      }
    }
  })

/**
 * Whether anything is kept aside: an ack needs no settling (nor its rows read back) otherwise.
 *
 * @internal
 */
export const hasKeptAside = (db: Db, targetKey: string) =>
  Effect.map(keptAsideKeys(db, targetKey), (keys) => keys.size > 0)

/** @internal */
export const make = (
  db: Db
): Pick<LocalStore.LocalStore["Type"], "applyPulledMutation" | "applyPulledMutations" | "listDeadLetters"> => {
  const applyPage = applyPulledMutations(db)
  return {
    applyPulledMutation: (targetKey, m) => Effect.map(applyPage(targetKey, [m]), (results) => results[0]),
    applyPulledMutations: applyPage,
    listDeadLetters: db.sql`SELECT seq, reason, mutation FROM sync_dead_letters ORDER BY id`.pipe(
      Effect.flatMap(Schema.decodeUnknown(Schema.Array(DeadLetterRow))),
      Effect.map((rows) =>
        rows.map((r): LocalStore.DeadLetter => ({
          seq: r.seq,
          reason: r.reason,
          mutation: Option.getOrElse(decodePulled(r.mutation), () => r.mutation)
        }))
      ),
      Effect.mapError(db.fail("listing dead letters"))
    )
  }
}
