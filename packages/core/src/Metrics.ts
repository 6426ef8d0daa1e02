/**
 * The manager's metrics, in one place: Effect `Metric`s, so they cost nothing until something
 * reads them and any exporter of Effect's metric registry can publish them (the CLI serves them
 * in the Prometheus text format with `agent --metrics-port`). Counters are incremental (they
 * only go up), which exporters publish as monotonic counters.
 *
 * Add a manager metric here, next to its siblings, so the README's table and this list stay one.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

/**
 * Local rows pushed and acked by the server.
 *
 * @since 0.1.0
 * @category metrics
 */
export const pushedTotal: Metric.Metric.Counter<number> = Metric.counter("autosync_pushed_total", {
  description: "local rows pushed and acked",
  incremental: true
})

/**
 * Remote mutations pulled and handed to the local store.
 *
 * @since 0.1.0
 * @category metrics
 */
export const pulledTotal: Metric.Metric.Counter<number> = Metric.counter("autosync_pulled_total", {
  description: "remote mutations pulled",
  incremental: true
})

/**
 * Failed sync cycles.
 *
 * @since 0.1.0
 * @category metrics
 */
export const failedTotal: Metric.Metric.Counter<number> = Metric.counter("autosync_failed_cycles_total", {
  description: "failed sync cycles",
  incremental: true
})

/**
 * Local rows not yet acked, after the last cycle.
 *
 * @since 0.1.0
 * @category metrics
 */
export const pendingRows: Metric.Metric.Gauge<number> = Metric.gauge("autosync_pending_rows", {
  description: "local rows not yet acked"
})

/**
 * How long a cycle (push, then pull, then recording the outcome) took, in seconds. Cycles
 * skipped (paused, backing off, lease held elsewhere) are not counted.
 *
 * @since 0.1.0
 * @category metrics
 */
export const cycleSeconds: Metric.Metric.Histogram<number> = Metric.histogram(
  "autosync_cycle_duration_seconds",
  // 1 ms … about 33 s: a local round trip up to a slow push of a large backlog.
  MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 16 }),
  "duration of a sync cycle (push, pull, record) in seconds"
)

/**
 * How far this replica is behind the server: the server's latest seq minus the pull cursor, as
 * last seen by a pull or the live-sync watcher (0 when caught up).
 *
 * @since 0.1.0
 * @category metrics
 */
export const lagSeqs: Metric.Metric.Gauge<number> = Metric.gauge("autosync_lag_seqs", {
  description: "server latest_seq minus this replica's pull cursor"
})

/**
 * 1 while the manager reports itself stalled (no progress although it looks healthy), else 0.
 *
 * @since 0.1.0
 * @category metrics
 */
export const stalled: Metric.Metric.Gauge<number> = Metric.gauge("autosync_stalled", {
  description: "1 while the manager reports a stall, else 0"
})

/**
 * Touches every metric above, so an exporter shows each one (at 0) before its first update.
 *
 * @since 0.1.0
 * @category metrics
 */
export const register: Effect.Effect<void> = Effect.all([
  Metric.incrementBy(pushedTotal, 0),
  Metric.incrementBy(pulledTotal, 0),
  Metric.incrementBy(failedTotal, 0),
  Metric.update(pendingRows, 0),
  Metric.update(lagSeqs, 0),
  Metric.update(stalled, 0)
], { discard: true })
