/**
 * The server's automatic compaction: a scoped fiber that reads the log's `stats` every `interval`
 * (only when the rows added since the last read could have reached the threshold) and, once the superseded rows reach `threshold`, runs `MutationLog.compact` (in bounded
 * transactions, so pushes and pulls wait at most one batch). One run at a time (single-flight:
 * the check waits for the run it started). Each run is logged with the rows it removed and the
 * time it took; a failed check or run is logged and tried again at the next interval.
 *
 * Several servers on one PostgreSQL database may each run one: their batches take turns under
 * the append lock, and a row removed by one is simply not found by the other.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type { CompactionReport, LogStats, MutationLogError } from "./MutationLog.js"
import { MutationLog } from "./MutationLog.js"
import * as ServerMetrics from "./ServerMetrics.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Compact once the log holds this many superseded rows (rows of which a newer row of the same
   * key exists). 0 turns automatic compaction off. Defaults to 10,000.
   */
  readonly threshold?: number | undefined
  /** How often the log's stats are read. Defaults to 30 seconds. */
  readonly interval?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export const defaults = {
  threshold: 10_000,
  interval: Duration.seconds(30)
} as const

const annotate = Effect.annotateLogs({ package: "@autosync/server", module: "Compactor" })

/**
 * The line a compaction run is logged (and printed by `autosync compact`) with.
 *
 * @since 0.1.0
 * @category constructors
 */
export const describe = (report: CompactionReport): string =>
  `compaction removed ${report.removed} superseded rows in ${report.durationMs} ms ` +
  `(${report.tombstonesDropped} tombstone payloads dropped, ${report.identitiesKept} identities kept for retries)`

/**
 * What the last stats read said; new rows since can at most all be superseded ones.
 *
 * @since 0.1.0
 * @category models
 */
export interface Seen {
  readonly superseded: number
  readonly latestSeq: number
}

/**
 * Whether the log may hold `threshold` superseded rows by now, from what the last stats read
 * said (`undefined`: none yet). Lets an idle or slowly growing log skip the stats read, which
 * counts the log's distinct keys (a scan) — an idle server then reads only its latest seq.
 *
 * @since 0.1.0
 * @category constructors
 */
export const mayReach = (seen: Seen | undefined, latestSeq: number, threshold: number): boolean =>
  seen === undefined || seen.superseded + (latestSeq - seen.latestSeq) >= threshold

// Compacts when `stats` say the threshold is reached.
const compactIfDue = (threshold: number, stats: LogStats) =>
  Effect.gen(function*() {
    if (threshold <= 0 || stats.superseded < threshold) return undefined
    const log = yield* MutationLog
    yield* Effect.logInfo(`compacting: ${stats.superseded} superseded rows of ${stats.rows}`).pipe(annotate)
    const report = yield* log.compact()
    yield* Metric.increment(ServerMetrics.compactionRunsTotal)
    yield* Effect.logInfo(describe(report)).pipe(annotate)
    return report
  })

/**
 * One check: compacts when the log's superseded rows reach `threshold`; the report of the run,
 * if one ran.
 *
 * @since 0.1.0
 * @category constructors
 */
export const check = (
  threshold: number
): Effect.Effect<CompactionReport | undefined, MutationLogError, MutationLog> =>
  Effect.flatMap(MutationLog, (log) => Effect.flatMap(log.stats, (stats) => compactIfDue(threshold, stats)))

/**
 * Compacts in the background while the layer is alive (nothing when `threshold` is 0). Each
 * interval reads the latest seq, and the stats only when the threshold may have been reached.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<never, never, MutationLog> =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const threshold = options.threshold ?? defaults.threshold
      if (threshold <= 0) return
      const log = yield* MutationLog
      const seen = yield* Ref.make<Seen | undefined>(undefined)
      // The idle case is one read of the latest seq, untraced (no span per interval).
      const latestSeq = Effect.withTracerEnabled(log.latestSeq, false)
      const tick = Effect.gen(function*() {
        if (!mayReach(yield* Ref.get(seen), yield* latestSeq, threshold)) return
        const stats = yield* log.stats
        yield* Ref.set(seen, { superseded: stats.superseded, latestSeq: stats.latestSeq })
        // After a run, read the stats again next time (rows may have come in meanwhile).
        if ((yield* compactIfDue(threshold, stats)) !== undefined) yield* Ref.set(seen, undefined)
      })
      yield* tick.pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("compaction failed", cause).pipe(annotate)),
        Effect.repeat(Schedule.spaced(options.interval ?? defaults.interval)),
        Effect.provideService(MutationLog, log),
        Effect.forkScoped
      )
    })
  )
