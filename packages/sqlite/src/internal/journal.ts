/**
 * The journal on SQLite: local writes appended (applied and journalled in one transaction),
 * pending rows listed, acks recorded (settling kept-aside mutations through `apply.ts`), and
 * the enrolled projects that decide which rows are pushed.
 *
 * @internal
 */
import { LocalStore, type Mutation } from "@autosync/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqlSchema from "@effect/sql/SqlSchema"
import * as Arr from "effect/Array"
import * as Effect from "effect/Effect"
import * as Order from "effect/Order"
import * as Schema from "effect/Schema"
import * as Applier from "../Applier.js"
import * as Apply from "./apply.js"
import type { Db } from "./db.js"
import { type AckedRow, decodeAcked, decodeChanges, ProjectRow, SyncMutationFromRow } from "./rows.js"

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

type JournalMembers =
  | "listPendingMutations"
  | "countPending"
  | "ackMutations"
  | "ackMutationSeqs"
  | "skipAckNonEnrolledMutations"
  | "appendLocal"
  | "enroll"
  | "unenroll"
  | "listEnrolled"

const findPending = (db: Db) =>
  SqlSchema.findAll({
    Request: Schema.Struct({ targetKey: Schema.String, limit: Schema.Number, excluded: Schema.Array(Schema.String) }),
    Result: SyncMutationFromRow,
    execute: ({ excluded, limit, targetKey }) =>
      db.sql`SELECT m.* FROM sync_mutations m
      JOIN sync_enrolled_projects e ON e.project = m.project
      WHERE m.target_key = ${targetKey} AND m.source = 'local' AND m.acked_at IS NULL
      ${excluded.length > 0 ? db.sql`AND m.project NOT IN ${db.sql.in(excluded)}` : db.sql``}
      ORDER BY m.seq
      ${limit >= 0 ? db.sql`LIMIT ${limit}` : db.sql``}`
  })

const raiseLastAcked = (db: Db, targetKey: string, maxSeq: number, at: number) =>
  Effect.zipRight(
    db.touchState(targetKey, at),
    db.sql`UPDATE sync_state SET last_acked_seq = MAX(last_acked_seq, ${maxSeq}) WHERE target_key = ${targetKey}`
  )

/** Settles the keys of rows just acked (with their server seqs when known), then raises last_acked_seq. */
const markAcked = (
  db: Db,
  targetKey: string,
  rows: ReadonlyArray<typeof AckedRow.Type>,
  serverSeqs: ReadonlyMap<number, number | undefined>,
  at: number
) =>
  Effect.zipRight(
    Apply.settleKeptAside(
      db,
      targetKey,
      rows.map((row) => ({
        key: { project: row.project, entity: row.entity, entityKey: row.entity_key },
        serverSeq: serverSeqs.get(row.seq)
      })),
      at
    ),
    raiseLastAcked(db, targetKey, rows.reduce((max, row) => Math.max(max, row.seq), 0), at)
  )

const updateRun = (db: Db, targetKey: string, run: AckRun, at: number, returning: boolean) =>
  db.sql`UPDATE sync_mutations
    SET acked_at = ${at}, server_seq = ${run.delta === undefined ? db.sql`server_seq` : db.sql`seq + ${run.delta}`}
    WHERE target_key = ${targetKey} AND source = 'local' AND acked_at IS NULL
      AND seq BETWEEN ${run.from} AND ${run.to}
    ${returning ? db.sql`RETURNING seq, project, entity, entity_key` : db.sql``}`

// With nothing kept aside, no key needs settling and the rows need not be read back
// (RETURNING doubles the statement's cost). A run updated in full ends at `to`.
const ackRunsQuickly = (db: Db, targetKey: string, runs: ReadonlyArray<AckRun>, at: number) =>
  Effect.gen(function*() {
    let maxSeq = 0
    for (const run of runs) {
      const { changes } = yield* updateRun(db, targetKey, run, at, false).raw.pipe(Effect.flatMap(decodeChanges))
      if (changes === run.to - run.from + 1) maxSeq = Math.max(maxSeq, run.to)
      else if (changes > 0) {
        // Part of the run was unknown or acked before: the highest row now acked (rows acked
        // before are at or below last_acked_seq already).
        maxSeq = Math.max(
          maxSeq,
          yield* db.count(db.sql`SELECT COALESCE(MAX(seq), 0) AS n FROM sync_mutations
            WHERE target_key = ${targetKey} AND source = 'local' AND acked_at IS NOT NULL
              AND seq BETWEEN ${run.from} AND ${run.to}`)
        )
      }
    }
    yield* raiseLastAcked(db, targetKey, maxSeq, at)
  })

const ackMutationSeqs = (db: Db) =>
  Effect.fn("SqliteLocalStore.ackMutationSeqs")(function*(
    targetKey: string,
    acks: ReadonlyArray<Mutation.MutationAck>
  ) {
    const at = yield* db.now
    const serverSeqs = new Map(acks.map((a) => [a.seq, a.serverSeq] as const))
    yield* db.writeTransaction(Effect.gen(function*() {
      const runs = ackRuns(serverSeqs)
      if (!(yield* Apply.hasKeptAside(db, targetKey))) return yield* ackRunsQuickly(db, targetKey, runs, at)
      const rows: Array<typeof AckedRow.Type> = []
      for (const run of runs) {
        rows.push(...(yield* updateRun(db, targetKey, run, at, true).pipe(Effect.flatMap(decodeAcked))))
      }
      yield* markAcked(db, targetKey, rows, serverSeqs, at)
    })).pipe(Effect.mapError(db.fail("acking mutations")))
  })

const appendLocal = (db: Db) =>
  Effect.fn("SqliteLocalStore.appendLocal")(function*(
    targetKey: string,
    entries: ReadonlyArray<unknown>
  ) {
    const writes = yield* LocalStore.decodeWrites(entries)
    for (const w of writes) {
      const problem = db.appliers.get(w.entity).validate(w)
      if (problem !== undefined) {
        return yield* new LocalStore.LocalStoreError({ reason: "invalid_input", message: problem })
      }
    }
    if (writes.length === 0) return []
    const at = yield* db.now
    return yield* db.writeTransaction(Effect.gen(function*() {
      const last = yield* db.count(db.sql`SELECT COALESCE(MAX(seq), 0) AS n FROM sync_mutations WHERE source = 'local'`)
      const seqs = writes.map((_, i) => last + 1 + i)
      // The whole batch in a few statements: appliers that can take many changes at once do.
      yield* Applier.applyAll(db.appliers, writes.map((w, i) => ({ ...w, targetKey, source: "local", seq: seqs[i] })))
        .pipe(
          Effect.provideService(SqlClient.SqlClient, db.sql),
          Effect.catchTag(
            "ApplyRejected",
            (rejected) => new LocalStore.LocalStoreError({ reason: "invalid_input", message: rejected.reason })
          )
        )
      for (const rows of Applier.inChunks(writes.map((w, i) => ({ w, seq: seqs[i] })))) {
        yield* db.sql`INSERT INTO sync_mutations ${
          db.sql.insert(rows.map(({ seq, w }) => ({
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
      yield* db.touchState(targetKey, at)
      yield* db.sql`UPDATE sync_state SET last_enqueued_seq = ${seqs[seqs.length - 1]} WHERE target_key = ${targetKey}`
      return seqs
    })).pipe(Effect.mapError(db.fail("appending local writes")))
  })

/** @internal */
export const make = (db: Db): Pick<LocalStore.LocalStore["Type"], JournalMembers> => {
  const { count, fail, now, sql, writeTransaction } = db
  const pending = findPending(db)
  return {
    listPendingMutations: (targetKey, limit, options) =>
      Effect.suspend(() => {
        // Same bounds as the memory store: up to `limit` rows, none for a limit below 1.
        const bounded = Number.isNaN(limit) || limit <= 0 ? 0 : Number.isFinite(limit) ? Math.ceil(limit) : -1
        if (bounded === 0) return Effect.succeed([])
        return pending({ targetKey, limit: bounded, excluded: options?.excludeProjects ?? [] })
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
        yield* markAcked(db, targetKey, rows, new Map(), at)
      })).pipe(Effect.mapError(fail("acking mutations")))
    }),

    ackMutationSeqs: ackMutationSeqs(db),

    skipAckNonEnrolledMutations: (targetKey) =>
      count(sql`SELECT COUNT(*) AS n FROM sync_mutations m
        WHERE m.target_key = ${targetKey} AND m.source = 'local' AND m.acked_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM sync_enrolled_projects e WHERE e.project = m.project)`).pipe(
        Effect.mapError(fail("counting non-enrolled mutations"))
      ),

    appendLocal: appendLocal(db),

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
      Effect.map((rows) => Arr.sort(rows.map((r) => r.project), Order.string)),
      Effect.mapError(fail("listing enrolled projects"))
    )
  }
}
