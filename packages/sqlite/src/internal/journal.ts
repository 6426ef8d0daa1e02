/**
 * The journal on SQLite: local writes appended (applied and journalled in one transaction),
 * pending rows listed, acks recorded (settling kept-aside mutations through `apply.ts`), and
 * the enrolled projects that decide which rows are pushed.
 *
 * An acked row leaves the journal in its ack's transaction; what the convergence rule still
 * needs of it, the server seq it got, stays per key in `sync_key_facts` while the cursor is
 * below it (`Merge.keepsOwnAckedSeq`). Journal seqs come from `sync_meta.last_local_seq`, so
 * none is given out twice however many rows were pruned.
 *
 * @internal
 */
import { LocalStore, Merge, type Mutation } from "@autosync/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Arr from "effect/Array"
import * as Effect from "effect/Effect"
import * as Order from "effect/Order"
import * as Schema from "effect/Schema"
import * as Applier from "../Applier.js"
import * as Apply from "./apply.js"
import type { Db } from "./db.js"
import * as Insert from "./insert.js"
import { type AckedRow, changeOf, decodeAcked, decodeJournalRows, ProjectRow } from "./rows.js"

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

const insertLocal = Insert.make(
  "INSERT INTO sync_mutations (target_key, source, seq, project, entity, entity_key, op, payload, occurred_at)",
  9
)

type JournalMembers =
  | "listPendingMutations"
  | "countPending"
  | "ackedThrough"
  | "journalSize"
  | "ackMutations"
  | "ackMutationSeqs"
  | "skipAckNonEnrolledMutations"
  | "appendLocal"
  | "enroll"
  | "unenroll"
  | "listEnrolled"

const findPending = (db: Db, targetKey: string, limit: number, excluded: ReadonlyArray<string>) =>
  db.sql`SELECT m.seq, m.target_key, m.source, m.project, m.entity, m.entity_key, m.op, m.payload,
      m.occurred_at, m.acked_at
    FROM sync_mutations m
    JOIN sync_enrolled_projects e ON e.project = m.project
    WHERE m.target_key = ${targetKey} AND m.source = 'local' AND m.acked_at IS NULL
    ${excluded.length > 0 ? db.sql`AND m.project NOT IN ${db.sql.in(excluded)}` : db.sql``}
    ORDER BY m.seq
    ${limit >= 0 ? db.sql`LIMIT ${limit}` : db.sql``}`.pipe(Effect.flatMap(decodeJournalRows))

const raiseLastAcked = (db: Db, targetKey: string, maxSeq: number, at: number) =>
  Effect.zipRight(
    db.touchState(targetKey, at),
    db.sql`UPDATE sync_state SET last_acked_seq = MAX(last_acked_seq, ${maxSeq}) WHERE target_key = ${targetKey}`
  )

/** The last journal seq given out (the journal's own rows count too, for a file mid-migration). */
const lastLocalSeq = (db: Db) =>
  db.count(db.sql`SELECT MAX(
    COALESCE((SELECT CAST(value AS INTEGER) FROM sync_meta WHERE key = 'last_local_seq'), 0),
    COALESCE((SELECT MAX(seq) FROM sync_mutations WHERE source = 'local'), 0)) AS n`)

const pendingIn = (db: Db, targetKey: string, run: AckRun) =>
  db.sql`target_key = ${targetKey} AND source = 'local' AND acked_at IS NULL AND seq BETWEEN ${run.from} AND ${run.to}`

/**
 * Keeps, per key of a run acked with known server seqs, the highest of them while the cursor
 * is below it (`Merge.keepsOwnAckedSeq`, as SQL). Row by row in seq order, a key's later row
 * raising what an earlier one stored: the same facts as grouping by key first, without the sort.
 */
const recordOwnAcked = (db: Db, targetKey: string, run: AckRun) =>
  run.delta === undefined ? Effect.void : db.sql`INSERT INTO sync_key_facts
      (target_key, project, entity, entity_key, own_acked_seq)
    SELECT target_key, project, entity, entity_key, seq + ${run.delta} FROM sync_mutations
    WHERE ${pendingIn(db, targetKey, run)}
      AND seq + ${run.delta} > COALESCE((SELECT last_pulled_seq FROM sync_state WHERE target_key = ${targetKey}), 0)
    ORDER BY seq
    ON CONFLICT (target_key, project, entity, entity_key)
      DO UPDATE SET own_acked_seq = MAX(own_acked_seq, excluded.own_acked_seq)`

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

// Acks a run: its server seqs kept as key facts, then its rows pruned.
const ackRun = (db: Db, targetKey: string, run: AckRun) =>
  Effect.zipRight(
    recordOwnAcked(db, targetKey, run),
    db.sql`DELETE FROM sync_mutations WHERE ${pendingIn(db, targetKey, run)}
      RETURNING seq, project, entity, entity_key`.pipe(Effect.flatMap(decodeAcked))
  )

// With nothing kept aside, no key needs settling and the rows need not be read back
// (RETURNING doubles the statement's cost): the highest row acked is read off the index first.
const ackRunsQuickly = (db: Db, targetKey: string, runs: ReadonlyArray<AckRun>, at: number) =>
  Effect.gen(function*() {
    let maxSeq = 0
    for (const run of runs) {
      const highest = yield* db.count(db.sql`SELECT COALESCE(MAX(seq), 0) AS n FROM sync_mutations
        WHERE ${pendingIn(db, targetKey, run)}`)
      if (highest === 0) continue
      maxSeq = Math.max(maxSeq, highest)
      yield* recordOwnAcked(db, targetKey, run)
      yield* db.sql`DELETE FROM sync_mutations WHERE ${pendingIn(db, targetKey, run)}`
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
      for (const run of runs) rows.push(...(yield* ackRun(db, targetKey, run)))
      yield* markAcked(db, targetKey, rows, serverSeqs, at)
    })).pipe(Effect.mapError(db.fail("acking mutations")))
    yield* db.reclaim
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
      const first = (yield* lastLocalSeq(db)) + 1
      const seqs = writes.map((_, i) => first + i)
      yield* db.sql`INSERT INTO sync_meta (key, value) VALUES ('last_local_seq', ${String(seqs[seqs.length - 1])})
        ON CONFLICT (key) DO UPDATE SET value = excluded.value`
      // The whole batch in a few statements: appliers that can take many changes at once do.
      yield* Applier.applyAll(db.appliers, writes.map((w, i) => changeOf(w, targetKey, "local", first + i)))
        .pipe(
          Effect.provideService(SqlClient.SqlClient, db.sql),
          Effect.catchTag(
            "ApplyRejected",
            (rejected) => new LocalStore.LocalStoreError({ reason: "invalid_input", message: rejected.reason })
          )
        )
      const values: Array<unknown> = []
      for (let i = 0; i < writes.length; i++) {
        const w = writes[i]
        const payload = w.payload === undefined ? null : JSON.stringify(w.payload)
        values.push(targetKey, "local", first + i, w.project, w.entity, w.entityKey, w.op, payload, at)
      }
      yield* Insert.run(db.sql, insertLocal, values)
      yield* db.touchState(targetKey, at)
      yield* db.sql`UPDATE sync_state SET last_enqueued_seq = ${seqs[seqs.length - 1]} WHERE target_key = ${targetKey}`
      return seqs
    })).pipe(Effect.mapError(db.fail("appending local writes")))
  })

/** @internal */
export const make = (db: Db): Pick<LocalStore.LocalStore["Type"], JournalMembers> => {
  const { count, fail, now, sql, writeTransaction } = db
  return {
    listPendingMutations: (targetKey, limit, options) =>
      Effect.suspend(() => {
        // Same bounds as the memory store: up to `limit` rows, none for a limit below 1.
        const bounded = Number.isNaN(limit) || limit <= 0 ? 0 : Number.isFinite(limit) ? Math.ceil(limit) : -1
        if (bounded === 0) return Effect.succeed([])
        return findPending(db, targetKey, bounded, options?.excludeProjects ?? [])
      }).pipe(Effect.mapError(fail("listing pending mutations"))),

    countPending: (targetKey) =>
      count(sql`SELECT COUNT(*) AS n FROM sync_mutations
        WHERE target_key = ${targetKey} AND source = 'local' AND acked_at IS NULL`).pipe(
        Effect.mapError(fail("counting pending mutations"))
      ),

    ackMutations: Effect.fn("SqliteLocalStore.ackMutations")(function*(targetKey, lastAckedSeq) {
      const at = yield* now
      yield* writeTransaction(Effect.gen(function*() {
        const rows = yield* sql`DELETE FROM sync_mutations
          WHERE target_key = ${targetKey} AND source = 'local' AND acked_at IS NULL AND seq <= ${lastAckedSeq}
          RETURNING seq, project, entity, entity_key`.pipe(Effect.flatMap(decodeAcked))
        yield* markAcked(db, targetKey, rows, new Map(), at)
      })).pipe(Effect.mapError(fail("acking mutations")))
      yield* db.reclaim
    }),

    // Both reads in one transaction (one snapshot): a write another process appends between them
    // would otherwise be counted as acked, and the server would then refuse it (409).
    ackedThrough: Effect.gen(function*() {
      const first = yield* count(sql`SELECT COALESCE(MIN(seq), 0) AS n FROM sync_mutations
        WHERE source = 'local' AND acked_at IS NULL`)
      return Merge.ackedThrough(first === 0 ? undefined : first, yield* lastLocalSeq(db))
    }).pipe(sql.withTransaction, Effect.mapError(fail("reading the acked-through watermark"))),

    journalSize: Effect.gen(function*() {
      const rows = yield* count(sql`SELECT COUNT(*) AS n FROM sync_mutations`)
      const keyFacts = yield* count(sql`SELECT COUNT(*) AS n FROM sync_key_facts`)
      const fileBytes = yield* count(
        sql`SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()`
      )
      return { rows, keyFacts, fileBytes }
    }).pipe(Effect.mapError(fail("measuring the journal"))),

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
