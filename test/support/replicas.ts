/**
 * Reading replica and server files (through the `inspect.mjs` fixture, read-only) and the checks
 * the end-to-end suites share: the server log replayed in seq order, and every local write in
 * the log exactly once.
 */
import { isDeepStrictEqual } from "node:util"
import type { Processes } from "./processes.js"

export interface ReplicaDump {
  readonly kind: "replica"
  readonly file: string
  readonly clientId: string | null
  /** The last journal seq the replica gave out (its writes are client seqs 1 to this). */
  readonly lastLocalSeq: number
  readonly state: {
    readonly last_enqueued_seq: number
    readonly last_acked_seq: number
    readonly last_pulled_seq: number
    readonly consecutive_failures: number
    readonly last_error: string | null
    readonly reason_code: string | null
    readonly lease_owner: string | null
  } | null
  readonly local: ReadonlyArray<{
    readonly seq: number
    readonly project: string
    readonly entity: string
    readonly entity_key: string
    readonly op: string
    readonly payload: string | null
    readonly acked_at: number | null
    readonly server_seq: number | null
  }>
  readonly remote: ReadonlyArray<{ readonly seq: number; readonly status: string | null }>
  readonly deadLetters: ReadonlyArray<{ readonly seq: number; readonly reason: string; readonly mutation: string }>
  readonly documents: ReadonlyArray<{
    readonly project: string
    readonly entity: string
    readonly entity_key: string
    readonly value: string
  }>
}

export interface LogRow {
  readonly seq: number
  readonly client_id: string
  readonly client_seq: number
  readonly project: string
  readonly entity: string
  readonly entity_key: string
  readonly op: string
  readonly payload: string
}

export interface ServerDump {
  readonly kind: "server"
  readonly file: string
  readonly rows: ReadonlyArray<LogRow>
}

/** Reads files with the inspect fixture: `replica:<file>` and `server:<file>` arguments. */
export const inspect = async (
  procs: Processes,
  replicas: ReadonlyArray<string>,
  server?: string
): Promise<{ readonly replicas: ReadonlyArray<ReplicaDump>; readonly server: ServerDump | undefined }> => {
  const args = [...replicas.map((f) => `replica:${f}`), ...(server ? [`server:${server}`] : [])]
  const result = await procs.runFixture("inspect.mjs", args, { timeoutMs: 30_000 })
  if (result.code !== 0) throw new Error(`inspect failed (${result.code}): ${result.stderr}`)
  const dumps = JSON.parse(result.stdout) as Array<ReplicaDump | ServerDump>
  return {
    replicas: dumps.filter((d): d is ReplicaDump => d.kind === "replica"),
    server: dumps.find((d): d is ServerDump => d.kind === "server")
  }
}

const parse = (text: string | null): unknown => text === null ? undefined : JSON.parse(text)

export interface Doc {
  readonly entity: string
  readonly key: string
  readonly value: unknown
}

/** The documents the log gives when replayed in seq order: per project, sorted by entity then key. */
export const replay = (rows: ReadonlyArray<LogRow>): Map<string, Array<Doc>> => {
  const byProject = new Map<string, Map<string, Doc>>()
  const sorted = [...rows].sort((a, b) => a.seq - b.seq)
  for (const row of sorted) {
    const docs = byProject.get(row.project) ?? new Map<string, Doc>()
    byProject.set(row.project, docs)
    const id = `${row.entity}\u0000${row.entity_key}`
    if (row.op === "delete") docs.delete(id)
    else docs.set(id, { entity: row.entity, key: row.entity_key, value: parse(row.payload) })
  }
  return new Map(
    [...byProject].map(([project, docs]) => [
      project,
      [...docs.values()].sort((a, b) =>
        a.entity === b.entity ? (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) : a.entity < b.entity ? -1 : 1
      )
    ])
  )
}

/**
 * Every local write of the replica (client seqs 1 to `lastLocalSeq`) is acked and in the log
 * exactly once, and the log holds nothing else from this replica. Acked rows are pruned from
 * the journal, so an acked write's content is no longer in the replica to compare; a pending
 * one is a problem, and its content is compared when the log has it. Returns the problems
 * (empty when all is well).
 */
export const exactlyOnceProblems = (replica: ReplicaDump, rows: ReadonlyArray<LogRow>): Array<string> => {
  const problems: Array<string> = []
  const mine = rows.filter((r) => r.client_id === replica.clientId)
  const byClientSeq = new Map<number, Array<LogRow>>()
  for (const row of mine) byClientSeq.set(row.client_seq, [...(byClientSeq.get(row.client_seq) ?? []), row])
  for (const [clientSeq, copies] of byClientSeq) {
    if (copies.length > 1) problems.push(`client_seq ${clientSeq} is in the log ${copies.length} times`)
  }
  const pending = new Map(replica.local.map((l) => [l.seq, l] as const))
  for (let seq = 1; seq <= replica.lastLocalSeq; seq++) {
    if (!pending.has(seq) && !byClientSeq.has(seq)) problems.push(`acked local write ${seq} is not in the log`)
  }
  for (const l of replica.local) {
    problems.push(`local write ${l.seq} (${l.project}/${l.entity}/${l.entity_key}) is not acked`)
    const row = (byClientSeq.get(l.seq) ?? [])[0]
    if (row === undefined) continue
    const same = row.project === l.project && row.entity === l.entity && row.entity_key === l.entity_key &&
      row.op === l.op && isDeepStrictEqual(parse(row.payload), parse(l.payload))
    if (!same) problems.push(`local write ${l.seq} differs from log row ${row.seq}`)
  }
  for (const row of mine) {
    if (!(row.client_seq >= 1 && row.client_seq <= replica.lastLocalSeq)) {
      problems.push(`log row ${row.seq} (client_seq ${row.client_seq}) has no local write`)
    }
  }
  return problems
}

/** Seqs 1..n, each once: the log never skips or repeats a seq. */
export const logProblems = (rows: ReadonlyArray<LogRow>): Array<string> => {
  const problems: Array<string> = []
  rows.forEach((row, i) => {
    if (row.seq !== i + 1) problems.push(`log position ${i + 1} holds seq ${row.seq}`)
  })
  const identities = new Set<string>()
  for (const row of rows) {
    const id = `${row.client_id}/${row.client_seq}`
    if (identities.has(id)) problems.push(`(client_id, client_seq) ${id} twice in the log`)
    identities.add(id)
  }
  return problems
}
