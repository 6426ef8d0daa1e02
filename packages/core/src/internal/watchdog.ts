/**
 * The stall watchdog: notices a manager that makes no progress although each step looks fine.
 * Operators' most common complaint about sync engines is a client that reports "healthy" (or a
 * transient `transport_failed`) for hours while its upload queue is stuck.
 *
 * Progress is read from the store's persisted state, never from what the manager believes it
 * did: a push is progress when `lastAckedSeq` rose, a pull when `lastPulledSeq` rose.
 *
 * - `push`: `stallCycles` cycles in a row in which the server answered a push, rows are still
 *   pending and none was acked. Cycles whose pushes could not reach the server count neither
 *   way (that is an outage, already a failure of its own).
 * - `pull`: `stallCycles` cycles in a row whose pulls were answered and that ended with the
 *   cursor behind the server's `latest_seq` and not moved.
 * - `watcher`: live sync's long-poll has failed without a single answer for `watcherStallAfter`.
 *
 * The rules are pure functions over the facts of a cycle (table-tested); the driver keeps their
 * state in one `Ref`, and the cycle's outcome carries the oldest stall into the status. Each
 * change of the stall is also recorded where it outlives the status: in the store (`markStalled`,
 * read by `autosync status`) and in the `autosync_stalled` gauge ({@link record}).
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Ref from "effect/Ref"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { LocalStore } from "../LocalStore.js"
import * as Metrics from "../Metrics.js"
import type * as Status from "../Status.js"
import type { SyncConfig } from "../SyncConfig.js"

/** A run of cycles without progress: since when, how many, and what was seen last. */
export interface Run {
  readonly since: number
  readonly cycles: number
  readonly why: string
}

/** What one cycle saw: its starting point (from the store) and what the server answered. */
export interface CycleFacts {
  readonly ackedBefore: number
  readonly cursorBefore: number
  /** The server answered at least one push (with any result). */
  readonly pushAnswered: boolean
  /** The highest `latest_seq` of the pages this cycle was answered with. */
  readonly latestSeq: number | undefined
}

/** Where a cycle ended, read from the store. */
export interface CycleEnd {
  readonly ackedAfter: number
  readonly cursorAfter: number
  /** Rows of enrolled projects are still pending. */
  readonly pending: boolean
}

/** The watchdog's state. */
export interface State {
  readonly push: Run | undefined
  readonly pull: Run | undefined
  /** Since when the watcher has failed without an answer, and its last error. */
  readonly watcher: { readonly since: number; readonly error: string } | undefined
  /** The facts of the cycle under way. */
  readonly cycle: CycleFacts
}

/** No cycle yet, nothing stuck. */
export const initial: State = {
  push: undefined,
  pull: undefined,
  watcher: undefined,
  cycle: { ackedBefore: 0, cursorBefore: 0, pushAnswered: false, latestSeq: undefined }
}

const extend = (run: Run | undefined, at: number, why: string): Run =>
  run ? { ...run, cycles: run.cycles + 1, why } : { since: at, cycles: 1, why }

/** The push run after a cycle: cleared by an ack or an empty queue, extended by an answered push. */
export const pushRule = (run: Run | undefined, facts: CycleFacts, end: CycleEnd, at: number): Run | undefined => {
  if (!end.pending || end.ackedAfter > facts.ackedBefore) return undefined
  if (!facts.pushAnswered) return run
  return extend(run, at, `the server answered pushes but no pending row was acked (last acked seq ${end.ackedAfter})`)
}

/** The pull run after a cycle: cleared once caught up or moved, extended by an answered pull that stayed behind. */
export const pullRule = (run: Run | undefined, facts: CycleFacts, end: CycleEnd, at: number): Run | undefined => {
  if (facts.latestSeq === undefined) return run
  if (end.cursorAfter >= facts.latestSeq || end.cursorAfter > facts.cursorBefore) return undefined
  return extend(
    run,
    at,
    `the pull cursor stays at seq ${end.cursorAfter} while the server's log is at seq ${facts.latestSeq}`
  )
}

/** The oldest stall in `state` at `at`, if any. */
export const stalled = (
  state: State,
  config: Pick<SyncConfig, "stallCycles" | "watcherStallAfter">,
  at: number
): Status.Stalled | undefined => {
  const found: Array<Status.Stalled> = []
  for (const kind of ["push", "pull"] as const) {
    const run = state[kind]
    if (run && run.cycles >= config.stallCycles) {
      found.push({ kind, since: new Date(run.since), why: `${run.why}, ${run.cycles} cycles in a row` })
    }
  }
  const { watcher } = state
  if (watcher && at - watcher.since >= Duration.toMillis(config.watcherStallAfter)) {
    // No running duration in it: `since` says how long, and an unchanged stall emits no status.
    const limit = Duration.format(config.watcherStallAfter)
    const why = `live sync's long-poll has failed for over ${limit} without an answer: ${watcher.error}`
    found.push({ kind: "watcher", since: new Date(watcher.since), why })
  }
  return found.reduce<Status.Stalled | undefined>((a, b) => a === undefined || b.since < a.since ? b : a, undefined)
}

/** `status` carrying `stall` (or none). */
export const mark = (status: Status.Status, stall: Status.Stalled | undefined): Status.Status => {
  const { stalled: _, ...rest } = status
  return stall ? { ...rest, stalled: stall } : rest
}

/** The same stall from the same start (or both none); its `why` may have moved on. */
export const sameRun = (a: Status.Stalled | undefined, b: Status.Stalled | undefined) =>
  a?.kind === b?.kind && a?.since.getTime() === b?.since.getTime()

const sameStall = (a: Status.Stalled | undefined, b: Status.Stalled | undefined) => sameRun(a, b) && a?.why === b?.why

// ---- the driver: the one Ref, fed by the cycle and the watcher -------------------------------

/** What the driver needs of the manager. */
export interface Watched {
  readonly watchdog: Ref.Ref<State>
  readonly status: SubscriptionRef.SubscriptionRef<Status.Status>
  readonly config: SyncConfig
  readonly store: LocalStore["Type"]
}

/**
 * Records a stall that began (or ended): the gauge, and the store, for readers of the file alone.
 * Not every cycle: a longer run of the same stall (same kind and start, a new `why`) is no change,
 * so the store keeps the `why` it was first seen with. A failed write is only logged: the cycle
 * compares with the stored stall and writes it again.
 */
export const record = (shared: Watched, stall: Status.Stalled | undefined) =>
  Effect.zipRight(
    Metric.set(Metrics.stalled, stall ? 1 : 0),
    shared.store.markStalled(shared.config.targetKey, stall).pipe(
      Effect.catchAll((e) => Effect.logWarning(`recording the stall in the store failed: ${e.message}`))
    )
  )

/** A cycle starts from the store's acked seq and cursor. */
export const begin = (watchdog: Ref.Ref<State>, ackedBefore: number, cursorBefore: number) =>
  Ref.update(watchdog, (s) => ({
    ...s,
    cycle: { ackedBefore, cursorBefore, pushAnswered: false, latestSeq: undefined }
  }))

/** The server answered a push of this cycle. */
export const pushAnswered = (watchdog: Ref.Ref<State>) =>
  Ref.update(watchdog, (s) => ({ ...s, cycle: { ...s.cycle, pushAnswered: true } }))

/** The server answered a pull of this cycle, its log at `latestSeq`. */
export const pullAnswered = (watchdog: Ref.Ref<State>, latestSeq: number) =>
  Ref.update(watchdog, (s) => ({
    ...s,
    cycle: { ...s.cycle, latestSeq: Math.max(s.cycle.latestSeq ?? 0, latestSeq) }
  }))

/** Ends a cycle: applies the rules; the stall the status should carry from now on. */
export const end = (shared: Watched, cycleEnd: CycleEnd, at: number) =>
  Effect.gen(function*() {
    // The facts are used once: a cycle that fails before `begin` adds nothing.
    const state = yield* Ref.updateAndGet(shared.watchdog, (s) => ({
      ...s,
      push: pushRule(s.push, s.cycle, cycleEnd, at),
      pull: pullRule(s.pull, s.cycle, cycleEnd, at),
      cycle: { ...s.cycle, pushAnswered: false, latestSeq: undefined }
    }))
    return stalled(state, shared.config, at)
  })

// Publishes a stall found between cycles (only the watcher's), emitting only on a change.
const publish = (shared: Watched, at: number) =>
  Effect.gen(function*() {
    const stall = stalled(yield* Ref.get(shared.watchdog), shared.config, at)
    const current = yield* SubscriptionRef.get(shared.status)
    if (sameStall(current.stalled, stall)) return
    yield* SubscriptionRef.update(shared.status, (s) => mark(s, stall))
    if (!sameRun(current.stalled, stall)) yield* record(shared, stall)
  })

/** The watcher's long-poll failed: a stall once it has failed for `watcherStallAfter`. */
export const watcherFailed = (shared: Watched, error: string) =>
  Effect.gen(function*() {
    const at = yield* Clock.currentTimeMillis
    yield* Ref.update(shared.watchdog, (s) => ({ ...s, watcher: { since: s.watcher?.since ?? at, error } }))
    yield* publish(shared, at)
  })

/** The watcher's long-poll was answered: its stall, if any, is over. */
export const watcherAnswered = (shared: Watched) =>
  Effect.gen(function*() {
    const before = yield* Ref.getAndUpdate(shared.watchdog, (s) => ({ ...s, watcher: undefined }))
    if (before.watcher !== undefined) yield* publish(shared, yield* Clock.currentTimeMillis)
  })
