/**
 * The replica's side of sync: the journal of local writes, the sync state (cursor, failures,
 * lease), enrollment, the built-in document table, and the rule for applying pulled mutations.
 *
 * `layerMemory` is a complete implementation with the same semantics as the SQLite one
 * (`@autosync/sqlite`), for tests and examples; one shared suite runs against both.
 *
 * What a pulled mutation does to its key, and what an ack settles, is the convergence rule in
 * `Merge`: every store looks up the facts and carries out `Merge`'s decisions.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Order from "effect/Order"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Merge from "./Merge.js"
import type { ApplyResult, MutationAck, PulledMutation, SyncMutation, SyncState } from "./Mutation.js"
import { LocalWrite, payloadProblem, Project, projectProblem, textProblem } from "./Mutation.js"
import type { ReasonCode, Stalled } from "./Status.js"

/**
 * A failure of the local store. `reason` tells bad input (nothing was changed) from a storage
 * failure (the database could not be read or written).
 *
 * @since 0.1.0
 * @category errors
 */
export class LocalStoreError extends Schema.TaggedError<LocalStoreError>()("LocalStoreError", {
  reason: Schema.Literal("invalid_input", "storage", "incompatible"),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/**
 * A row of the built-in document table.
 *
 * @since 0.1.0
 * @category models
 */
export interface Document {
  readonly project: string
  readonly entity: string
  readonly entityKey: string
  readonly value: unknown
}

/**
 * A pulled mutation that could not be applied, with the reason.
 *
 * @since 0.1.0
 * @category models
 */
export interface DeadLetter {
  readonly seq: number
  readonly reason: string
  readonly mutation: unknown
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ListPendingOptions {
  /** Projects to leave out (the manager skips a project whose push failed in this cycle). */
  readonly excludeProjects?: ReadonlyArray<string>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ApplyPageOptions {
  /**
   * The page holds every mutation up to this seq that the pull did not leave out: the cursor
   * moves on to it after the page. A pull that leaves out the replica's own writes relies on
   * their server seqs (`ackMutationSeqs`) to settle a key they decided.
   */
  readonly throughSeq?: number | undefined
}

/**
 * What a replica's journal holds. It keeps only what sync still needs: pending local rows, the
 * pulled mutations kept aside until an ack settles them, and per key the server seq of the
 * replica's newest acked write while the cursor is below it (`Merge.keepsOwnAckedSeq`). Acked
 * local rows and applied, superseded or duplicate pulled ones are pruned when acked or applied;
 * dead letters stay in their own table.
 *
 * @since 0.1.0
 * @category models
 */
export interface JournalSize {
  /** Journal rows: pending local rows and kept-aside pulled ones, of every target. */
  readonly rows: number
  /** Keys with a remembered `ownAckedSeq`. */
  readonly keyFacts: number
  /** The database file's size in bytes (without its WAL); `undefined` for a store without a file. */
  readonly fileBytes: number | undefined
}

/**
 * What {@link LocalStore} `reidentify` did.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reidentified {
  readonly previousClientId: string
  readonly clientId: string
  /** Local rows not acked yet: they are pushed again under the new identity. */
  readonly pending: number
}

/**
 * @since 0.1.0
 * @category tags
 */
export class LocalStore extends Context.Tag("@autosync/core/LocalStore")<LocalStore, {
  /** The replica's identity: created once with the database, the same for every process on it. */
  readonly clientId: string
  /** The sync state of a target; a fresh state when none was stored yet. */
  readonly getSyncState: (targetKey: string) => Effect.Effect<SyncState, LocalStoreError>
  /** Un-acked local rows of enrolled projects, in journal order, at most `limit`. */
  readonly listPendingMutations: (
    targetKey: string,
    limit: number,
    options?: ListPendingOptions
  ) => Effect.Effect<ReadonlyArray<SyncMutation>, LocalStoreError>
  /** Local rows pending in all projects, enrolled or not. */
  readonly countPending: (targetKey: string) => Effect.Effect<number, LocalStoreError>
  /**
   * The `ackedThrough` watermark every push carries (`PushBatch`): every local write of this
   * replica with a journal seq (its `clientSeq`) at or below it is acked (`Merge.ackedThrough`).
   * Exact: never above a pending row, of any target or project, enrolled or not (a `clientSeq`
   * is the replica's, whatever the target).
   */
  readonly ackedThrough: Effect.Effect<number, LocalStoreError>
  /** What the journal holds now (it keeps only what sync still needs; see {@link JournalSize}). */
  readonly journalSize: Effect.Effect<JournalSize, LocalStoreError>
  /**
   * Acks every local row with seq `<= lastAckedSeq`, without server seqs: kept-aside mutations
   * of keys left without un-acked writes are applied. Prefer {@link ackMutationSeqs}.
   */
  readonly ackMutations: (targetKey: string, lastAckedSeq: number) => Effect.Effect<void, LocalStoreError>
  /** Acks exactly these local rows, each with the server seq it was accepted as. */
  readonly ackMutationSeqs: (
    targetKey: string,
    acks: ReadonlyArray<MutationAck>
  ) => Effect.Effect<void, LocalStoreError>
  /**
   * Counts the pending local rows that are skipped because their project is not enrolled.
   * They are not acked: they stay pending until their project is enrolled.
   */
  readonly skipAckNonEnrolledMutations: (targetKey: string) => Effect.Effect<number, LocalStoreError>
  /** Takes the lease when free or expired, renews it for its owner; `false` when another owner holds it. */
  readonly acquireLease: (
    targetKey: string,
    owner: string,
    ttl: Duration.DurationInput,
    now: Date
  ) => Effect.Effect<boolean, LocalStoreError>
  /** Releases the lease if `owner` holds it. */
  readonly releaseLease: (targetKey: string, owner: string) => Effect.Effect<void, LocalStoreError>
  /** Applies one pulled mutation and advances the cursor to its seq, atomically. */
  readonly applyPulledMutation: (
    targetKey: string,
    mutation: PulledMutation
  ) => Effect.Effect<ApplyResult, LocalStoreError>
  /**
   * Applies a page of pulled mutations in seq order, each exactly as `applyPulledMutation`,
   * in one transaction (one commit per page, not per row). When one fails, those before it stay
   * applied (with the cursor at the last of them) and the error is returned. With `throughSeq`
   * (the page was the whole log up to it, less this replica's own writes), the cursor then
   * moves on to it, even for an empty page.
   */
  readonly applyPulledMutations: (
    targetKey: string,
    mutations: ReadonlyArray<PulledMutation>,
    options?: ApplyPageOptions
  ) => Effect.Effect<ReadonlyArray<ApplyResult>, LocalStoreError>
  /**
   * Records a failed cycle: one more consecutive failure, the error and the retry deadline, and
   * the `CloudTransport.identity` it was met with (none clears it): a restarted manager honours
   * the deadline only with a transport of the same identity.
   */
  readonly markFailure: (
    targetKey: string,
    message: string,
    backoffUntil: Date,
    reasonCode: ReasonCode,
    transportIdentity?: string
  ) => Effect.Effect<void, LocalStoreError>
  /** Records a successful cycle: failures reset. */
  readonly markHealthy: (targetKey: string) => Effect.Effect<void, LocalStoreError>
  /**
   * Records the stall the manager's watchdog sees (`Status.stalled`), or that none is left
   * (`undefined`). Called only when it changes; `getSyncState` returns it as `stalled`.
   */
  readonly markStalled: (targetKey: string, stalled: Stalled | undefined) => Effect.Effect<void, LocalStoreError>
  /** Applies local writes and journals them in one transaction; returns their journal seqs. */
  readonly appendLocal: (
    targetKey: string,
    entries: ReadonlyArray<LocalWrite>
  ) => Effect.Effect<ReadonlyArray<number>, LocalStoreError>
  readonly enroll: (project: string) => Effect.Effect<void, LocalStoreError>
  readonly unenroll: (project: string) => Effect.Effect<void, LocalStoreError>
  readonly listEnrolled: Effect.Effect<ReadonlyArray<string>, LocalStoreError>
  /** A document of the built-in table. */
  readonly getDocument: (
    project: string,
    entity: string,
    entityKey: string
  ) => Effect.Effect<Option.Option<unknown>, LocalStoreError>
  /** The documents of a project (of one entity when given), ordered by entity then key. */
  readonly listDocuments: (
    project: string,
    entity?: string
  ) => Effect.Effect<ReadonlyArray<Document>, LocalStoreError>
  /** Pulled mutations that could not be applied. */
  readonly listDeadLetters: Effect.Effect<ReadonlyArray<DeadLetter>, LocalStoreError>
  /**
   * Gives this replica a new identity, for a database file that was copied (or otherwise shares
   * its `clientId` with another replica, which the server refuses with `identity_conflict`).
   * In one transaction:
   * - a new `clientId` (this store's `clientId` reads it from now on; other processes on the
   *   file must be restarted);
   * - the pending (un-acked) local rows keep their journal seqs, which are their `clientSeq`s
   *   under the new identity: they are pushed again as new writes and settle by the usual rule.
   *   Rows acked before are shared history and are not pushed again. A pending row whose push
   *   the server stored under the old identity but whose ack was lost is then stored twice,
   *   the same content at two seqs: harmless for the convergence rule;
   * - every target's pull cursor goes back to 0 (pulled rows and kept-aside mutations are
   *   forgotten) and its failures are cleared: while the identities were shared, pulls left
   *   out the other copy's writes as if they were this replica's own, so everything is pulled
   *   again.
   */
  readonly reidentify: Effect.Effect<Reidentified, LocalStoreError>
}>() {}

const decodeWritesStrictly = Schema.decodeUnknown(Schema.Array(Schema.typeSchema(LocalWrite)))

// A write that passes `LocalWrite`'s rules (the functions its filters call), built as the schema
// decodes it; `undefined` for anything else, which the schema then describes.
const plainWrite = (u: unknown): LocalWrite | undefined => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return undefined
  for (const key of writeKeys) if (!Object.hasOwn(u, key)) return undefined
  const { entity, entityKey, op, payload, project } = u as Record<string, unknown>
  return typeof project === "string" && projectProblem(project) === undefined &&
      typeof entity === "string" && textProblem(entity, "entity") === undefined &&
      typeof entityKey === "string" && textProblem(entityKey, "entity_key") === undefined &&
      typeof op === "string" && textProblem(op, "op") === undefined && payloadProblem(payload) === undefined
    ? { project, entity, entityKey, op, payload }
    : undefined
}
const writeKeys = ["project", "entity", "entityKey", "op", "payload"] as const

/**
 * Decodes local writes, failing with `invalid_input` naming the bad field. Valid writes are
 * checked in plain code (a batch is thousands of them); the schema runs to describe a problem.
 *
 * @since 0.1.0
 * @category validation
 */
export const decodeWrites = (
  entries: ReadonlyArray<unknown>
): Effect.Effect<ReadonlyArray<LocalWrite>, LocalStoreError> => {
  if (Array.isArray(entries)) {
    const writes: Array<LocalWrite> = new Array(entries.length)
    let i = 0
    for (; i < entries.length; i++) {
      const w = plainWrite(entries[i])
      if (w === undefined) break
      writes[i] = w
    }
    if (i === entries.length) return Effect.succeed(writes)
  }
  return decodeWritesStrictly(entries).pipe(
    Effect.mapError((error) => {
      // One line naming the first problem and where it is (e.g. `[0].project: project must not be empty`).
      const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
      const where = issue?.path.map((step) => typeof step === "number" ? `[${step}]` : `.${String(step)}`).join("")
      return new LocalStoreError({
        reason: "invalid_input",
        message: issue === undefined
          ? `invalid local write: ${ParseResult.TreeFormatter.formatErrorSync(error)}`
          : `invalid local write ${where}: ${issue.message}`
      })
    })
  )
}

/**
 * Validates a project name, failing with `invalid_input`.
 *
 * @since 0.1.0
 * @category validation
 */
export const decodeProject = (project: unknown): Effect.Effect<string, LocalStoreError> =>
  Schema.decodeUnknown(Project)(project).pipe(
    Effect.mapError(() =>
      new LocalStoreError({
        reason: "invalid_input",
        message: typeof project === "string"
          ? (projectProblem(project) ?? `invalid project ${JSON.stringify(project)}`)
          : `invalid project ${JSON.stringify(project)}`
      })
    )
  )

/**
 * Why a pulled mutation cannot be applied by the document table, or `undefined`.
 *
 * @since 0.1.0
 * @category validation
 */
export const documentOpProblem = (op: string, payload: unknown): string | undefined => {
  if (op === "delete") return undefined
  if (op === "upsert") return payload === undefined ? "upsert without a payload" : undefined
  return `no applier for op ${JSON.stringify(op)}`
}

/**
 * A fresh sync state.
 *
 * @since 0.1.0
 * @category constructors
 */
export const emptyState = (targetKey: string, now: Date): SyncState => ({
  targetKey,
  lastEnqueuedSeq: 0,
  lastAckedSeq: 0,
  lastPulledSeq: 0,
  consecutiveFailures: 0,
  updatedAt: now
})

/** A pending local row: acked rows leave the journal. */
interface JournalRow {
  readonly row: SyncMutation
}

/**
 * Options of the in-memory store.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions {
  /** The replica's identity. Defaults to a random id from Effect's `Random`. */
  readonly clientId?: string
}

/** The in-memory store's tables. */
interface MemoryTables {
  /** Pending local rows, in seq order. */
  journal: Array<JournalRow>
  /** Per target and key: the server seq of our newest acked write, while the cursor is below it. */
  readonly ownAcked: Map<string, number>
  readonly states: Map<string, SyncState>
  readonly documents: Map<string, Document>
  /** Per target and key (`targetKey \0 Merge.keyOf`). */
  readonly keptAside: Map<string, Array<PulledMutation>>
  readonly deadLetters: Array<DeadLetter>
}

const memoryNow = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms))

const memoryState = (tables: MemoryTables, targetKey: string, at: Date): SyncState =>
  tables.states.get(targetKey) ?? emptyState(targetKey, at)

const updateMemoryState = (tables: MemoryTables, targetKey: string, f: (s: SyncState) => Partial<SyncState>) =>
  Effect.map(memoryNow, (at) => {
    const current = memoryState(tables, targetKey, at)
    tables.states.set(targetKey, { ...current, ...f(current), updatedAt: at })
  })

const applyToDocuments = (tables: MemoryTables, m: Merge.Key & { readonly op: string; readonly payload: unknown }) => {
  const key = Merge.keyOf(m)
  if (m.op === "delete") tables.documents.delete(key)
  else tables.documents.set(key, { project: m.project, entity: m.entity, entityKey: m.entityKey, value: m.payload })
}

// Every journal row is a pending local one: this tells the target's.
const isPendingLocal = (j: JournalRow, targetKey: string) => j.row.targetKey === targetKey

/**
 * The memory store's side of the convergence rule: the facts looked up in its tables, the
 * decisions (`Merge`) carried out on them.
 */
const memoryMerge = (
  tables: MemoryTables
): Pick<LocalStore["Type"], "applyPulledMutation" | "applyPulledMutations" | "ackMutations" | "ackMutationSeqs"> => {
  const { keptAside, ownAcked } = tables
  const hasUnacked = (targetKey: string, key: string) =>
    tables.journal.some((j) => isPendingLocal(j, targetKey) && Merge.keyOf(j.row) === key)
  const ownAckedSeq = (targetKey: string, key: string) => ownAcked.get(`${targetKey}\u0000${key}`) ?? 0
  // The facts the cursor has passed are needed no more.
  const forgetPassed = (targetKey: string, cursor: number) => {
    for (const [k, seq] of ownAcked) {
      if (k.startsWith(`${targetKey}\u0000`) && !Merge.keepsOwnAckedSeq(seq, cursor)) ownAcked.delete(k)
    }
  }

  const carryOut = (targetKey: string, m: PulledMutation, result: ApplyResult) => {
    if (result === "dead_letter") {
      tables.deadLetters.push({ seq: m.seq, reason: documentOpProblem(m.op, m.payload) ?? "", mutation: m })
    } else if (result === "kept_aside") {
      const heldKey = `${targetKey}\u0000${Merge.keyOf(m)}`
      keptAside.set(heldKey, [...(keptAside.get(heldKey) ?? []), m])
    } else if (result === "applied") {
      applyToDocuments(tables, m)
    }
  }

  const applyPage = (targetKey: string, ms: ReadonlyArray<PulledMutation>, through: number | undefined) =>
    Effect.gen(function*() {
      const problem = Merge.pageProblem(ms, through)
      if (problem !== undefined) return yield* new LocalStoreError({ reason: "invalid_input", message: problem })
      const before = memoryState(tables, targetKey, yield* memoryNow).lastPulledSeq
      const { cursor, results } = Merge.decidePage(ms, before, (m) => {
        const key = Merge.keyOf(m)
        return {
          problem: documentOpProblem(m.op, m.payload),
          hasUnackedWrite: hasUnacked(targetKey, key),
          ownAckedSeq: ownAckedSeq(targetKey, key)
        }
      })
      ms.forEach((m, i) => carryOut(targetKey, m, results[i]))
      const next = Merge.cursorAfter(cursor, through)
      if (next !== before || through !== undefined) {
        yield* updateMemoryState(tables, targetKey, () => ({ lastPulledSeq: next }))
        forgetPassed(targetKey, next)
      }
      return results
    })

  // Acked rows leave the journal (their server seqs stay as per-key facts while the cursor is
  // below them), then the kept-aside mutations of their keys are settled.
  const markAcked = (targetKey: string, seqs: ReadonlyMap<number, number | undefined>, at: Date) => {
    const acked: Array<{ key: SyncMutation; serverSeq: number | undefined }> = []
    const remaining: Array<JournalRow> = []
    for (const j of tables.journal) {
      if (isPendingLocal(j, targetKey) && seqs.has(j.row.seq)) {
        acked.push({ key: j.row, serverSeq: seqs.get(j.row.seq) })
      } else remaining.push(j)
    }
    tables.journal = remaining
    const cursor = memoryState(tables, targetKey, at).lastPulledSeq
    for (const [key, { serverSeq }] of Merge.ackedSeqByKey(acked)) {
      const heldKey = `${targetKey}\u0000${key}`
      if (Merge.keepsOwnAckedSeq(serverSeq, cursor)) {
        ownAcked.set(heldKey, Math.max(ownAcked.get(heldKey) ?? 0, serverSeq))
      }
      const held = keptAside.get(heldKey)
      if (held === undefined) continue
      const settled = Merge.settle(held, { ackedSeq: serverSeq, hasUnackedWrite: hasUnacked(targetKey, key) })
      if (settled.keep.length > 0) keptAside.set(heldKey, [...settled.keep])
      else keptAside.delete(heldKey)
      for (const m of settled.apply) applyToDocuments(tables, m)
    }
    const maxSeq = acked.reduce((max, a) => Math.max(max, a.key.seq), 0)
    return updateMemoryState(tables, targetKey, (s) => ({ lastAckedSeq: Math.max(s.lastAckedSeq, maxSeq) }))
  }

  return {
    applyPulledMutation: (targetKey, m) => Effect.map(applyPage(targetKey, [m], undefined), (results) => results[0]),
    applyPulledMutations: (targetKey, ms, options) => applyPage(targetKey, ms, options?.throughSeq),
    ackMutations: (targetKey, lastAckedSeq) =>
      Effect.flatMap(memoryNow, (at) => {
        const seqs = new Map<number, number | undefined>()
        for (const j of tables.journal) {
          if (isPendingLocal(j, targetKey) && j.row.seq <= lastAckedSeq) seqs.set(j.row.seq, undefined)
        }
        return markAcked(targetKey, seqs, at)
      }),
    ackMutationSeqs: (targetKey, acks) =>
      Effect.flatMap(memoryNow, (at) => markAcked(targetKey, new Map(acks.map((a) => [a.seq, a.serverSeq])), at))
  }
}

/**
 * An in-memory `LocalStore`. Every operation is atomic (it runs synchronously).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (options: MemoryOptions = {}): Effect.Effect<LocalStore["Type"]> =>
  Effect.gen(function*() {
    const newId = Effect.map(
      Effect.randomWith((r) => r.nextIntBetween(0, 2 ** 31 - 1)),
      (n) => `replica-${n.toString(36)}`
    )
    let clientId = options.clientId ?? (yield* newId)
    const tables: MemoryTables = {
      journal: [],
      ownAcked: new Map(),
      states: new Map(),
      documents: new Map(),
      keptAside: new Map(),
      deadLetters: []
    }
    const { deadLetters, documents, keptAside, ownAcked, states } = tables
    const enrolled = new Set<string>()
    let nextSeq = 1

    const now = memoryNow
    const stateOf = (targetKey: string, at: Date): SyncState => memoryState(tables, targetKey, at)
    const update = (targetKey: string, f: (s: SyncState) => Partial<SyncState>) =>
      updateMemoryState(tables, targetKey, f)
    const docKey = (project: string, entity: string, entityKey: string) => Merge.keyOf({ project, entity, entityKey })

    return LocalStore.of({
      get clientId() {
        return clientId
      },
      ...memoryMerge(tables),
      getSyncState: (targetKey) => Effect.map(now, (at) => stateOf(targetKey, at)),
      listPendingMutations: (targetKey, limit, opts) =>
        Effect.sync(() => {
          const excluded = new Set(opts?.excludeProjects ?? [])
          const out: Array<SyncMutation> = []
          for (const j of tables.journal) {
            if (out.length >= limit) break
            if (isPendingLocal(j, targetKey) && enrolled.has(j.row.project) && !excluded.has(j.row.project)) {
              out.push(j.row)
            }
          }
          return out
        }),
      countPending: (targetKey) => Effect.sync(() => tables.journal.filter((j) => isPendingLocal(j, targetKey)).length),
      ackedThrough: Effect.sync(() => Merge.ackedThrough(tables.journal[0]?.row.seq, nextSeq - 1)),
      journalSize: Effect.sync(() => ({
        rows: tables.journal.length + [...keptAside.values()].reduce((n, held) => n + held.length, 0),
        keyFacts: ownAcked.size,
        fileBytes: undefined
      })),
      skipAckNonEnrolledMutations: (targetKey) =>
        Effect.sync(() =>
          tables.journal.filter((j) => isPendingLocal(j, targetKey) && !enrolled.has(j.row.project)).length
        ),
      acquireLease: (targetKey, owner, ttl, at) =>
        Effect.gen(function*() {
          const current = stateOf(targetKey, at)
          const free = current.leaseOwner === undefined || current.leaseOwner === owner ||
            current.leaseUntil === undefined || current.leaseUntil.getTime() <= at.getTime()
          if (!free) return false
          const leaseUntil = new Date(at.getTime() + Duration.toMillis(Duration.decode(ttl)))
          yield* update(targetKey, () => ({ leaseOwner: owner, leaseUntil }))
          return true
        }),
      releaseLease: (targetKey, owner) =>
        Effect.suspend(() => {
          const current = states.get(targetKey)
          if (current?.leaseOwner !== owner) return Effect.void
          return Effect.map(now, (at) => {
            const { leaseOwner: _o, leaseUntil: _u, ...rest } = current
            states.set(targetKey, { ...rest, updatedAt: at })
          })
        }),
      markFailure: (targetKey, message, backoffUntil, reasonCode, transportIdentity) =>
        Effect.flatMap(
          update(targetKey, (s) => ({
            consecutiveFailures: s.consecutiveFailures + 1,
            lastError: message,
            backoffUntil,
            reasonCode
          })),
          () =>
            Effect.sync(() => {
              const { transportIdentity: _t, ...rest } = states.get(targetKey)!
              states.set(targetKey, transportIdentity === undefined ? rest : { ...rest, transportIdentity })
            })
        ),
      markHealthy: (targetKey) =>
        Effect.flatMap(
          update(targetKey, () => ({ consecutiveFailures: 0 })),
          () =>
            Effect.sync(() => {
              const { backoffUntil: _b, lastError: _e, reasonCode: _r, transportIdentity: _t, ...rest } = states.get(
                targetKey
              )!
              states.set(targetKey, rest)
            })
        ),
      markStalled: (targetKey, stalled) =>
        Effect.flatMap(
          update(targetKey, () => (stalled ? { stalled } : {})),
          () =>
            Effect.sync(() => {
              const { stalled: _s, ...rest } = states.get(targetKey)!
              if (!stalled) states.set(targetKey, rest)
            })
        ),
      appendLocal: (targetKey, entries) =>
        Effect.gen(function*() {
          const writes = yield* decodeWrites(entries)
          for (const w of writes) {
            const problem = documentOpProblem(w.op, w.payload)
            if (problem) return yield* new LocalStoreError({ reason: "invalid_input", message: problem })
          }
          const at = yield* now
          const seqs: Array<number> = []
          for (const w of writes) {
            const seq = nextSeq++
            applyToDocuments(tables, w)
            tables.journal.push({ row: { ...w, seq, targetKey, source: "local", occurredAt: at } })
            seqs.push(seq)
          }
          if (seqs.length > 0) yield* update(targetKey, () => ({ lastEnqueuedSeq: seqs[seqs.length - 1] }))
          return seqs
        }),
      enroll: (project) => Effect.map(decodeProject(project), (p) => void enrolled.add(p)),
      unenroll: (project) => Effect.map(decodeProject(project), (p) => void enrolled.delete(p)),
      listEnrolled: Effect.sync(() => [...enrolled].sort()),
      getDocument: (project, entity, entityKey) =>
        Effect.sync(() =>
          Option.map(Option.fromNullable(documents.get(docKey(project, entity, entityKey))), (d) => d.value)
        ),
      listDocuments: (project, entity) =>
        Effect.sync(() =>
          [...documents.values()]
            .filter((d) => d.project === project && (entity === undefined || d.entity === entity))
            .sort(byEntityThenKey)
        ),
      listDeadLetters: Effect.sync(() => [...deadLetters]),
      reidentify: Effect.gen(function*() {
        const previousClientId = clientId
        let fresh = yield* newId
        while (fresh === previousClientId) fresh = yield* newId
        const at = yield* now
        clientId = fresh
        keptAside.clear()
        for (const [targetKey, state] of states) {
          const { backoffUntil: _b, lastError: _e, reasonCode: _r, transportIdentity: _t, ...rest } = state
          states.set(targetKey, { ...rest, lastPulledSeq: 0, consecutiveFailures: 0, updatedAt: at })
        }
        const pending = tables.journal.length
        return { previousClientId, clientId: fresh, pending }
      })
    })
  })

// Documents in the order the SQLite store lists them: by entity, then key.
const byEntityThenKey: Order.Order<{ readonly entity: string; readonly entityKey: string }> = Order.combine(
  Order.mapInput(Order.string, (d) => d.entity),
  Order.mapInput(Order.string, (d) => d.entityKey)
)

/**
 * A fresh in-memory store.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<LocalStore> = Layer.effect(LocalStore, makeMemory())

/**
 * An in-memory store with options (a fixed `clientId`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemoryWith = (options: MemoryOptions): Layer.Layer<LocalStore> =>
  Layer.effect(LocalStore, makeMemory(options))
