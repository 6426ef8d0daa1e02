/**
 * The data that flows through autosync: what a replica pushes, what it pulls, and the rows of
 * its journal. TypeScript fields are camelCase; the wire schemas' encoded (JSON) form is
 * snake_case. Journal rows, sync state and local writes have no JSON form of their own
 * (`autosync status --json` is `Status.StatusReport`).
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { Stalled } from "./Status.js"

/**
 * How deep a payload may nest. Deeper payloads are refused at every boundary, so a hostile
 * client cannot blow the stack of a server or of another replica.
 *
 * @since 0.1.0
 * @category models
 */
export const maxPayloadDepth = 64

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
// A cheap first look (a plain character class): only strings it matches need the exact checks.
const suspicious = /[\u0000\uD800-\uDFFF]/

const checkString = (s: string, path: string): string | undefined => {
  if (!suspicious.test(s)) return undefined
  if (s.includes("\u0000")) return `${path} contains a NUL character`
  if (loneSurrogate.test(s)) return `${path} contains a lone UTF-16 surrogate`
  return undefined
}

/**
 * Why a value is not a portable JSON payload, or `undefined` when it is one: plain objects,
 * arrays, strings (no NUL, no lone surrogates: PostgreSQL's jsonb rejects both), booleans,
 * null and numbers within the safe-integer range, nested at most {@link maxPayloadDepth} deep.
 *
 * @since 0.1.0
 * @category models
 */
export const payloadProblem = (value: unknown): string | undefined => {
  // An explicit stack instead of recursion: the check itself must survive hostile nesting. Paths
  // are kept as parent links and spelled out only for a problem (this runs for every row).
  interface Frame {
    readonly value: unknown
    readonly parent: Frame | undefined
    readonly step: string
    readonly depth: number
  }
  const pathOf = (frame: Frame): string => {
    const steps: Array<string> = []
    for (let f: Frame | undefined = frame; f !== undefined; f = f.parent) steps.push(f.step)
    return steps.reverse().join("")
  }
  const stack: Array<Frame> = [{ value, parent: undefined, step: "payload", depth: 1 }]
  while (stack.length > 0) {
    const frame = stack.pop()!
    const v = frame.value
    if (frame.depth > maxPayloadDepth) return `payload nests deeper than ${maxPayloadDepth} levels`
    if (v === null || typeof v === "boolean") continue
    if (typeof v === "string") {
      const problem = suspicious.test(v) ? checkString(v, pathOf(frame)) : undefined
      if (problem !== undefined) return problem
      continue
    }
    if (typeof v === "number") {
      if (!Number.isFinite(v)) return `${pathOf(frame)} is not a finite number`
      if (Math.abs(v) > Number.MAX_SAFE_INTEGER) return `${pathOf(frame)} is beyond the safe-integer range`
      continue
    }
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        stack.push({ value: v[i], parent: frame, step: `[${i}]`, depth: frame.depth + 1 })
      }
      continue
    }
    if (typeof v === "object" && [Object.prototype, null].includes(Object.getPrototypeOf(v))) {
      for (const k in v as object) {
        const problem = suspicious.test(k) ? checkString(k, `${pathOf(frame)} key ${JSON.stringify(k)}`) : undefined
        if (problem !== undefined) return problem
        stack.push({ value: (v as Record<string, unknown>)[k], parent: frame, step: `.${k}`, depth: frame.depth + 1 })
      }
      continue
    }
    return `${pathOf(frame)} is not JSON (${typeof v})`
  }
  return undefined
}

/**
 * A JSON value that every backend stores unchanged (see {@link payloadProblem}).
 *
 * @since 0.1.0
 * @category models
 */
export const Payload: Schema.Schema<unknown> = Schema.Unknown.pipe(
  Schema.filter((u) => payloadProblem(u) ?? true, { identifier: "Payload" })
)

/**
 * Why `s` is not a text field named `what` (`entity`, `entity_key`, `op`, a stored `project`):
 * it must not be empty, nor contain NUL or a lone surrogate. `undefined` when it is one.
 *
 * @since 0.1.0
 * @category models
 */
export const textProblem = (s: string, what: string): string | undefined =>
  s.length === 0 ? `${what} must not be empty` : checkString(s, what)

const NonEmptyText = (what: string) => Schema.String.pipe(Schema.filter((s) => textProblem(s, what) ?? true))

/**
 * Why `project` is not a name a new write, an enrollment or a token may use, or `undefined`: it
 * must not be empty or only whitespace, nor start or end with whitespace (`" notes"` and
 * `"notes"` would otherwise be two projects that look alike everywhere they are printed), nor
 * contain NUL or a lone surrogate.
 *
 * @since 0.1.0
 * @category models
 */
export const projectProblem = (project: string): string | undefined => {
  if (project.trim().length === 0) {
    return project.length === 0 ? "project must not be empty" : "project must not be empty (it is only whitespace)"
  }
  if (project.trim() !== project) return `project must not start or end with whitespace, got ${JSON.stringify(project)}`
  return checkString(project, "project")
}

/**
 * A project name as new input: the rule of {@link projectProblem}. `LocalWrite` (so every
 * store's `appendLocal` and `Documents.put`/`remove`), `LocalStore.enroll`/`unenroll` and
 * tokens check it.
 *
 * @since 0.1.0
 * @category models
 */
export const Project = Schema.String.pipe(
  Schema.filter((s) => projectProblem(s) ?? true, { identifier: "Project" })
)

/**
 * A project name as rows already written may hold it: only non-empty. The wire (push and pull)
 * and the journal's rows use it, so data written before {@link Project}'s whitespace rule keeps
 * syncing instead of failing every push or pull that meets it.
 *
 * @since 0.1.0
 * @category models
 */
export const StoredProject = NonEmptyText("project")
/**
 * @since 0.1.0
 * @category models
 */
export const Entity = NonEmptyText("entity")
/**
 * @since 0.1.0
 * @category models
 */
export const EntityKey = NonEmptyText("entity_key")
/**
 * The operation. `"upsert"` and `"delete"` are the built-in ones; appliers may define others.
 *
 * @since 0.1.0
 * @category models
 */
export const Op = NonEmptyText("op")

/**
 * A positive sequence number (journal seq, client seq or server seq).
 *
 * @since 0.1.0
 * @category models
 */
export const Seq = Schema.Number.pipe(
  // One refinement, not Int + positive + lessThanOrEqualTo: this runs for every row on the wire.
  Schema.filter((n) => Number.isSafeInteger(n) && n > 0 ? true : `Expected a positive safe integer, actual ${n}`, {
    jsonSchema: { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER }
  })
)

/**
 * A cursor: 0 before anything was seen, else the last seq seen.
 *
 * @since 0.1.0
 * @category models
 */
export const Cursor = Schema.Number.pipe(
  Schema.filter((n) => Number.isSafeInteger(n) && n >= 0 ? true : `Expected a non-negative safe integer, actual ${n}`, {
    jsonSchema: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER }
  })
)

// The wire schemas below are transformations from the JSON struct (snake_case, every refinement,
// so problems are named as they are spelled on the wire) to a plain type-side struct, renaming by
// hand. `fromKey` property signatures would check each refinement on both sides, and a struct
// holding them checks its nested structs twice again: four passes over every row of a page
// instead of one. To check a value of the type side, encode it.

const EntryJson = Schema.Struct({
  client_seq: Seq,
  project: StoredProject,
  entity: Entity,
  entity_key: EntityKey,
  op: Op,
  payload: Payload
})
const EntryType = Schema.Struct({
  clientSeq: Schema.Number,
  project: Schema.String,
  entity: Schema.String,
  entityKey: Schema.String,
  op: Schema.String,
  payload: Schema.Unknown
})
const entryFromJson = (w: typeof EntryJson.Type): typeof EntryType.Encoded => ({
  clientSeq: w.client_seq,
  project: w.project,
  entity: w.entity,
  entityKey: w.entity_key,
  op: w.op,
  payload: w.payload
})
const entryToJson = (e: typeof EntryType.Type): typeof EntryJson.Type => ({
  client_seq: e.clientSeq,
  project: e.project,
  entity: e.entity,
  entity_key: e.entityKey,
  op: e.op,
  payload: e.payload
})

/**
 * One local write as pushed. `clientSeq` is the row's local journal seq: unique and increasing
 * per replica, so `(clientId, clientSeq)` names it forever.
 *
 * @since 0.1.0
 * @category models
 */
export const MutationEntry = Schema.transform(EntryJson, EntryType, {
  strict: true,
  decode: entryFromJson,
  encode: entryToJson
})
/**
 * @since 0.1.0
 * @category models
 */
export interface MutationEntry extends Schema.Schema.Type<typeof MutationEntry> {}

/**
 * A replica's identity as stored in its database: non-empty, printable, at most 128 characters.
 *
 * @since 0.1.0
 * @category models
 */
export const ClientId = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9._:-]{1,128}$/, {
    message: () => "client_id must be 1-128 characters of A-Z a-z 0-9 . _ : -"
  })
)

/**
 * A batch of one replica's local writes. `ackedThrough` (optional) is the replica's watermark:
 * every one of its local writes with a `clientSeq` at or below it is acked, so it never pushes
 * one of them again; the server may forget their identities (see the log's compaction).
 *
 * @since 0.1.0
 * @category models
 */
export const PushBatch = Schema.transform(
  Schema.Struct({
    client_id: ClientId,
    mutations: Schema.Array(EntryJson),
    acked_through: Schema.optionalWith(Cursor, { exact: true })
  }),
  Schema.Struct({
    clientId: Schema.String,
    mutations: Schema.Array(EntryType),
    ackedThrough: Schema.optionalWith(Schema.Number, { exact: true })
  }),
  {
    strict: true,
    decode: (w) => ({
      clientId: w.client_id,
      mutations: w.mutations.map(entryFromJson),
      ...(w.acked_through === undefined ? {} : { ackedThrough: w.acked_through })
    }),
    encode: (b) => ({
      client_id: b.clientId,
      mutations: b.mutations.map(entryToJson),
      ...(b.ackedThrough === undefined ? {} : { acked_through: b.ackedThrough })
    })
  }
)
/**
 * @since 0.1.0
 * @category models
 */
export interface PushBatch extends Schema.Schema.Type<typeof PushBatch> {}

/**
 * One server seq per pushed entry, in the order of the batch.
 *
 * @since 0.1.0
 * @category models
 */
export const PushResult = Schema.transform(
  Schema.Struct({ accepted_seqs: Schema.Array(Seq) }),
  Schema.Struct({ acceptedSeqs: Schema.Array(Schema.Number) }),
  {
    strict: true,
    decode: (w) => ({ acceptedSeqs: w.accepted_seqs }),
    encode: (r) => ({ accepted_seqs: r.acceptedSeqs })
  }
)
/**
 * @since 0.1.0
 * @category models
 */
export interface PushResult extends Schema.Schema.Type<typeof PushResult> {}

const DateText = Schema.String.pipe(
  Schema.filter((s) => Number.isNaN(new Date(s).getTime()) ? `Expected a date, actual ${JSON.stringify(s)}` : true)
)
const PulledJson = Schema.Struct({
  seq: Seq,
  project: StoredProject,
  entity: Entity,
  entity_key: EntityKey,
  op: Op,
  payload: Payload,
  occurred_at: DateText
})
const PulledType = Schema.Struct({
  seq: Schema.Number,
  project: Schema.String,
  entity: Schema.String,
  entityKey: Schema.String,
  op: Schema.String,
  payload: Schema.Unknown,
  occurredAt: Schema.DateFromSelf
})
const pulledFromJson = (w: typeof PulledJson.Type): typeof PulledType.Encoded => ({
  seq: w.seq,
  project: w.project,
  entity: w.entity,
  entityKey: w.entity_key,
  op: w.op,
  payload: w.payload,
  occurredAt: new Date(w.occurred_at)
})
const pulledToJson = (m: typeof PulledType.Type): typeof PulledJson.Type => ({
  seq: m.seq,
  project: m.project,
  entity: m.entity,
  entity_key: m.entityKey,
  op: m.op,
  payload: m.payload,
  occurred_at: m.occurredAt.toISOString()
})

/**
 * A mutation from the server's log, with the seq the server gave it.
 *
 * @since 0.1.0
 * @category models
 */
export const PulledMutation = Schema.transform(PulledJson, PulledType, {
  strict: true,
  decode: pulledFromJson,
  encode: pulledToJson
})
/**
 * @since 0.1.0
 * @category models
 */
export interface PulledMutation extends Schema.Schema.Type<typeof PulledMutation> {}

/**
 * @since 0.1.0
 * @category models
 */
export const PullResponse = Schema.transform(
  Schema.Struct({ mutations: Schema.Array(PulledJson), has_more: Schema.Boolean, latest_seq: Cursor }),
  Schema.Struct({ mutations: Schema.Array(PulledType), hasMore: Schema.Boolean, latestSeq: Schema.Number }),
  {
    strict: true,
    decode: (w) => ({ mutations: w.mutations.map(pulledFromJson), hasMore: w.has_more, latestSeq: w.latest_seq }),
    encode: (p) => ({ mutations: p.mutations.map(pulledToJson), has_more: p.hasMore, latest_seq: p.latestSeq })
  }
)
/**
 * @since 0.1.0
 * @category models
 */
export interface PullResponse extends Schema.Schema.Type<typeof PullResponse> {}

/**
 * What an application asks to journal: a write not yet numbered.
 *
 * @since 0.1.0
 * @category models
 */
export const LocalWrite = Schema.Struct({
  project: Project,
  entity: Entity,
  entityKey: EntityKey,
  op: Op,
  payload: Payload
})
/**
 * @since 0.1.0
 * @category models
 */
export interface LocalWrite extends Schema.Schema.Type<typeof LocalWrite> {}

/**
 * @since 0.1.0
 * @category models
 */
export const Source = Schema.Literal("local", "remote")

/**
 * A row of the journal. Local rows are pending until acked; remote rows record what was
 * pulled (and, while a key has an un-acked local write, what is kept aside for it).
 *
 * @since 0.1.0
 * @category models
 */
export const SyncMutation = Schema.Struct({
  seq: Seq,
  targetKey: Schema.String,
  project: StoredProject,
  entity: Entity,
  entityKey: EntityKey,
  op: Op,
  payload: Payload,
  source: Source,
  occurredAt: Schema.Date,
  ackedAt: Schema.optionalWith(Schema.Date, { exact: true })
})
/**
 * @since 0.1.0
 * @category models
 */
export interface SyncMutation extends Schema.Schema.Type<typeof SyncMutation> {}

/**
 * The persisted sync state of one target.
 *
 * @since 0.1.0
 * @category models
 */
export const SyncState = Schema.Struct({
  targetKey: Schema.String,
  lastEnqueuedSeq: Cursor,
  lastAckedSeq: Cursor,
  lastPulledSeq: Cursor,
  consecutiveFailures: Schema.NonNegativeInt,
  backoffUntil: Schema.optionalWith(Schema.Date, { exact: true }),
  lastError: Schema.optionalWith(Schema.String, { exact: true }),
  reasonCode: Schema.optionalWith(Schema.String, { exact: true }),
  /** The `CloudTransport.identity` the recorded failure was met with (server URL, token hash). */
  transportIdentity: Schema.optionalWith(Schema.String, { exact: true }),
  leaseOwner: Schema.optionalWith(Schema.String, { exact: true }),
  leaseUntil: Schema.optionalWith(Schema.Date, { exact: true }),
  /**
   * The stall the manager last recorded (`Status.stalled`), kept so that a reader of the file
   * alone (`autosync status`) sees it; absent when none.
   */
  stalled: Schema.optionalWith(Stalled, { exact: true }),
  updatedAt: Schema.Date
})
/**
 * @since 0.1.0
 * @category models
 */
export interface SyncState extends Schema.Schema.Type<typeof SyncState> {}

/**
 * A pushed local row and the server seq it was accepted as.
 *
 * @since 0.1.0
 * @category models
 */
export interface MutationAck {
  readonly seq: number
  readonly serverSeq: number
}

/**
 * What applying one pulled mutation did.
 * - `applied`: written to the local tables.
 * - `kept_aside`: its key has an un-acked local write; held until that write is acked.
 * - `duplicate`: its seq was already pulled; nothing changed.
 * - `dead_letter`: it could not be decoded or applied; recorded with the reason.
 * - `superseded`: a write of this replica to the same key, acked with a higher server seq,
 *   already decided the key (pulls leave out a replica's own writes); nothing changed.
 *
 * @since 0.1.0
 * @category models
 */
export type ApplyResult = "applied" | "kept_aside" | "duplicate" | "dead_letter" | "superseded"
