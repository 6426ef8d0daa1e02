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
import * as Array from "effect/Array"
import * as Effect from "effect/Effect"
import * as Order from "effect/Order"
import * as Schema from "effect/Schema"
import * as Applier from "../Applier.js"
import type * as Apply from "./apply.js"
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

/** @internal */
export const make = (
  db: Db,
  apply: ReturnType<typeof Apply.make>
): Pick<LocalStore.LocalStore["Type"], JournalMembers> => {
  const { appliers, count, fail, now, sql, touchState, writeTransaction } = db

  const findPending = SqlSchema.findAll({
    Request: Schema.Struct({ targetKey: Schema.String, limit: Schema.Number, excluded: Schema.Array(Schema.String) }),
    Result: SyncMutationFromRow,
    execute: ({ excluded, limit, targetKey }) =>
      sql`SELECT m.* FROM sync_mutations m
        JOIN sync_enrolled_projects e ON e.project = m.project
        WHERE m.target_key = ${targetKey} AND m.source = 'local' AND m.acked_at IS NULL
        ${excluded.length > 0 ? sql`AND m.project NOT IN ${sql.in(excluded)}` : sql``}
        ORDER BY m.seq
        ${limit >= 0 ? sql`LIMIT ${limit}` : sql``}`
  })

  const raiseLastAcked = (targetKey: string, maxSeq: number, at: number) =>
    Effect.zipRight(
      touchState(targetKey, at),
      sql`UPDATE sync_state SET last_acked_seq = MAX(last_acked_seq, ${maxSeq}) WHERE target_key = ${targetKey}`
    )

  /** Settles the keys of rows just acked (with their server seqs when known), then raises last_acked_seq. */
  const markAcked = (
    targetKey: string,
    rows: ReadonlyArray<typeof AckedRow.Type>,
    serverSeqs: ReadonlyMap<number, number | undefined>,
    at: number
  ) =>
    Effect.zipRight(
      apply.settleKeptAside(
        targetKey,
        rows.map((row) => ({
          key: { project: row.project, entity: row.entity, entityKey: row.entity_key },
          serverSeq: serverSeqs.get(row.seq)
        })),
        at
      ),
      raiseLastAcked(targetKey, rows.reduce((max, row) => Math.max(max, row.seq), 0), at)
    )

  const updateRun = (targetKey: string, run: AckRun, at: number, returning: boolean) =>
    sql`UPDATE sync_mutations
      SET acked_at = ${at}, server_seq = ${run.delta === undefined ? sql`server_seq` : sql`seq + ${run.delta}`}
      WHERE target_key = ${targetKey} AND source = 'local' AND acked_at IS NULL
        AND seq BETWEEN ${run.from} AND ${run.to}
      ${returning ? sql`RETURNING seq, project, entity, entity_key` : sql``}`

  // With nothing kept aside, no key needs settling and the rows need not be read back
  // (RETURNING doubles the statement's cost). A run updated in full ends at `to`.
  const ackRunsQuickly = (targetKey: string, runs: ReadonlyArray<AckRun>, at: number) =>
    Effect.gen(function*() {
      let maxSeq = 0
      for (const run of runs) {
        const { changes } = yield* updateRun(targetKey, run, at, false).raw.pipe(Effect.flatMap(decodeChanges))
        if (changes === run.to - run.from + 1) maxSeq = Math.max(maxSeq, run.to)
        else if (changes > 0) {
          // Part of the run was unknown or acked before: the highest row now acked (rows acked
          // before are at or below last_acked_seq already).
          maxSeq = Math.max(
            maxSeq,
            yield* count(sql`SELECT COALESCE(MAX(seq), 0) AS n FROM sync_mutations
              WHERE target_key = ${targetKey} AND source = 'local' AND acked_at IS NOT NULL
                AND seq BETWEEN ${run.from} AND ${run.to}`)
          )
        }
      }
      yield* raiseLastAcked(targetKey, maxSeq, at)
    })

  const ackMutationSeqs = Effect.fn("SqliteLocalStore.ackMutationSeqs")(function*(
    targetKey: string,
    acks: ReadonlyArray<Mutation.MutationAck>
  ) {
    const at = yield* now
    const serverSeqs = new Map(acks.map((a) => [a.seq, a.serverSeq] as const))
    yield* writeTransaction(Effect.gen(function*() {
      const runs = ackRuns(serverSeqs)
      if (!(yield* apply.hasKeptAside(targetKey))) return yield* ackRunsQuickly(targetKey, runs, at)
      const rows: Array<typeof AckedRow.Type> = []
      for (const run of runs) {
        rows.push(...(yield* updateRun(targetKey, run, at, true).pipe(Effect.flatMap(decodeAcked))))
      }
      yield* markAcked(targetKey, rows, serverSeqs, at)
    })).pipe(Effect.mapError(fail("acking mutations")))
  })

  const appendLocal = Effect.fn("SqliteLocalStore.appendLocal")(function*(
    targetKey: string,
    entries: ReadonlyArray<unknown>
  ) {
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
  })

  return {
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

    ackMutationSeqs,

    skipAckNonEnrolledMutations: (targetKey) =>
      count(sql`SELECT COUNT(*) AS n FROM sync_mutations m
        WHERE m.target_key = ${targetKey} AND m.source = 'local' AND m.acked_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM sync_enrolled_projects e WHERE e.project = m.project)`).pipe(
        Effect.mapError(fail("counting non-enrolled mutations"))
      ),

    appendLocal,

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
      Effect.map((rows) => Array.sort(rows.map((r) => r.project), Order.string)),
      Effect.mapError(fail("listing enrolled projects"))
    )
  }
}
