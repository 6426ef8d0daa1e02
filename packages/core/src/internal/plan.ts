/**
 * The pure decisions of a push: how pending rows are grouped, and which rows a push result
 * lets us ack. Kept apart from the driver so they are table-tested directly.
 */
import type { MutationAck, MutationEntry, SyncMutation } from "../Mutation.js"

/** Rows grouped by project, groups in order of first appearance, rows in journal order. */
export const groupByProject = (rows: ReadonlyArray<SyncMutation>): ReadonlyArray<ReadonlyArray<SyncMutation>> => {
  const groups = new Map<string, Array<SyncMutation>>()
  for (const row of rows) {
    const group = groups.get(row.project)
    if (group) group.push(row)
    else groups.set(row.project, [row])
  }
  return [...groups.values()]
}

/** The wire entry for a journal row: its journal seq is its client seq. */
export const toEntry = (row: SyncMutation): MutationEntry => ({
  clientSeq: row.seq,
  project: row.project,
  entity: row.entity,
  entityKey: row.entityKey,
  op: row.op,
  payload: row.payload
})

/**
 * The acks a push result allows: one positive integer server seq per pushed row, else
 * nothing at all (a short, long or malformed result acks no row, so no row is lost).
 */
export const ackPlan = (
  rows: ReadonlyArray<SyncMutation>,
  acceptedSeqs: ReadonlyArray<number> | undefined
): ReadonlyArray<MutationAck> | string => {
  if (acceptedSeqs === undefined) return `the server returned no accepted seqs for ${rows.length} rows`
  if (acceptedSeqs.length !== rows.length) {
    return `the server accepted ${acceptedSeqs.length} seqs for ${rows.length} pushed rows`
  }
  const acks: Array<MutationAck> = []
  for (let i = 0; i < rows.length; i++) {
    const serverSeq = acceptedSeqs[i]
    if (!Number.isSafeInteger(serverSeq) || serverSeq <= 0) return `the server returned an invalid seq ${serverSeq}`
    acks.push({ seq: rows[i].seq, serverSeq })
  }
  return acks
}

/**
 * The part of a pulled page after the cursor. A server may resend seqs at or below it (a page
 * that starts on the boundary seq, a retried page); those were pulled already and are skipped,
 * as the original manager did, instead of failing the pull for good.
 */
export const afterCursor = <M extends { readonly seq: number }>(cursor: number, mutations: ReadonlyArray<M>) =>
  mutations.length > 0 && mutations[0].seq > cursor ? mutations : mutations.filter((m) => m.seq > cursor)

/**
 * Why a pulled page (its part after the cursor, see {@link afterCursor}) cannot be applied, or
 * `undefined`: seqs must increase past the cursor, and a page with `has_more` must bring one.
 */
export const pageProblem = (cursor: number, seqs: ReadonlyArray<number>, hasMore: boolean): string | undefined => {
  let last = cursor
  for (const seq of seqs) {
    if (seq <= last) return `pulled seq ${seq} does not follow ${last}`
    last = seq
  }
  if (hasMore && seqs.length === 0) return `the server said has_more but returned no mutation after seq ${cursor}`
  return undefined
}
