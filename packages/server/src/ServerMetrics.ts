/**
 * The server's metrics, in one place: Effect `Metric`s (free until read; any exporter of
 * Effect's metric registry can publish them), the middleware that counts requests, and the
 * `GET /metrics` route.
 *
 * - Every request is counted by route, method and status, and a push's or pull's duration is
 *   recorded from the request's arrival to its answer (a held pull: `long_poll="true"`).
 * - `GET /metrics` is served only when the server is given a renderer (`SyncServer.Options.metrics`,
 *   e.g. the CLI's Prometheus exposition through `@effect/opentelemetry`): the library itself
 *   depends on no exporter. It needs no token: it tells counts and durations, never a token,
 *   a project, a client or a payload. The log's size and latest seq are read when it is scraped.
 *
 * Add a server metric here, next to its siblings (flow control counts its rejections with
 * {@link rejected}, compaction its runs with {@link compactionRunsTotal}).
 *
 * @since 0.1.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import { MutationLog } from "./MutationLog.js"

// ----------------------------------------------------------------------------
// metrics
// ----------------------------------------------------------------------------

/**
 * Requests answered, tagged `route` (one of {@link routes}, else `other`), `method` and `status`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const requestsTotal: Metric.Metric.Counter<number> = Metric.counter("autosync_server_requests_total", {
  description: "HTTP requests answered, by route, method and status",
  incremental: true
})

// 1 ms … about 33 s: a push to a local SQLite file up to a pull held for its whole wait.
const secondsBoundaries = MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 16 })

/**
 * How long a push took, from the request's arrival to its answer, in seconds.
 *
 * @since 0.1.0
 * @category metrics
 */
export const pushSeconds: Metric.Metric.Histogram<number> = Metric.histogram(
  "autosync_server_push_duration_seconds",
  secondsBoundaries,
  "duration of POST /v1/push in seconds"
)

/**
 * How long a pull took, in seconds, tagged `long_poll` (`true` when it asked to be held, so its
 * duration includes the wait).
 *
 * @since 0.1.0
 * @category metrics
 */
export const pullSeconds: Metric.Metric.Histogram<number> = Metric.histogram(
  "autosync_server_pull_duration_seconds",
  secondsBoundaries,
  "duration of GET /v1/pull in seconds (long_poll=true includes the wait)"
)

/**
 * Mutations a push answered with a seq (a retried one counts again: it is answered again).
 *
 * @since 0.1.0
 * @category metrics
 */
export const mutationsAcceptedTotal: Metric.Metric.Counter<number> = Metric.counter(
  "autosync_server_mutations_accepted_total",
  { description: "pushed mutations answered with a seq", incremental: true }
)

/**
 * Pulls being held right now, waiting for a newer seq.
 *
 * @since 0.1.0
 * @category metrics
 */
export const heldPulls: Metric.Metric.Gauge<number> = Metric.gauge("autosync_server_held_pulls", {
  description: "long-poll pulls held open right now"
})

/**
 * Rows in the mutation log, read when `/metrics` is scraped (when the log can count them).
 *
 * @since 0.1.0
 * @category metrics
 */
export const logRows: Metric.Metric.Gauge<number> = Metric.gauge("autosync_server_log_rows", {
  description: "rows in the mutation log"
})

/**
 * The log's latest seq, read when `/metrics` is scraped.
 *
 * @since 0.1.0
 * @category metrics
 */
export const latestSeq: Metric.Metric.Gauge<number> = Metric.gauge("autosync_server_latest_seq", {
  description: "the latest seq of the mutation log"
})

/**
 * Requests turned away by flow control, tagged `status` (`429` over a rate, `503` overloaded or
 * shutting down). Count one with {@link rejected}.
 *
 * @since 0.1.0
 * @category metrics
 */
export const rejectionsTotal: Metric.Metric.Counter<number> = Metric.counter("autosync_server_rejections_total", {
  description: "requests rejected by flow control, by status (429 rate limited, 503 overloaded)",
  incremental: true
})

/**
 * Counts one request rejected with `status`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const rejected = (status: 429 | 503): Effect.Effect<void> =>
  Metric.increment(Metric.tagged(rejectionsTotal, "status", String(status)))

/**
 * Compaction runs of the mutation log.
 *
 * @since 0.1.0
 * @category metrics
 */
export const compactionRunsTotal: Metric.Metric.Counter<number> = Metric.counter(
  "autosync_server_compaction_runs_total",
  { description: "compaction runs of the mutation log", incremental: true }
)

// Metrics appear in an export once touched: these are touched at start, so a scrape shows 0
// rather than nothing before the first rejection or compaction.
const touched = Effect.all([
  Metric.incrementBy(Metric.tagged(rejectionsTotal, "status", "429"), 0),
  Metric.incrementBy(Metric.tagged(rejectionsTotal, "status", "503"), 0),
  Metric.incrementBy(compactionRunsTotal, 0),
  Metric.incrementBy(mutationsAcceptedTotal, 0),
  Metric.set(heldPulls, 0)
], { discard: true })

// ----------------------------------------------------------------------------
// recording
// ----------------------------------------------------------------------------

/**
 * The paths a request is counted under; any other path is `other`, so a client probing random
 * URLs cannot grow the number of series.
 *
 * @since 0.1.0
 * @category models
 */
export const routes: ReadonlySet<string> = new Set(["/v1/push", "/v1/pull", "/v1/health", "/metrics"])

const routeOf = (url: string) => {
  const path = url.split("?")[0]
  return routes.has(path) ? path : "other"
}

/**
 * Counts each request and times pushes and pulls. Outermost, so it sees every answer.
 *
 * @since 0.1.0
 * @category middleware
 */
export const track: <E, R>(app: HttpApp.Default<E, R>) => HttpApp.Default<E, R> = HttpMiddleware.make((app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const started = yield* Clock.currentTimeMillis
    const exit = yield* Effect.exit(app)
    const seconds = ((yield* Clock.currentTimeMillis) - started) / 1000
    const status = Exit.isSuccess(exit)
      ? exit.value.status
      : HttpServerError.causeResponseStripped(exit.cause)[0].status
    const route = routeOf(request.url)
    yield* Metric.increment(
      Metric.taggedWithLabels(requestsTotal, [
        MetricLabel.make("route", route),
        MetricLabel.make("method", request.method),
        MetricLabel.make("status", String(status))
      ])
    )
    if (route === "/v1/push") yield* Metric.update(pushSeconds, seconds)
    if (route === "/v1/pull") {
      const waitMs = Number(new URLSearchParams(request.url.split("?")[1] ?? "").get("wait_ms") ?? 0)
      yield* Metric.update(Metric.tagged(pullSeconds, "long_poll", String(waitMs > 0)), seconds)
    }
    return yield* exit
  })
)

/**
 * `awaitAfter` of a held pull, counted in {@link heldPulls} while it waits.
 *
 * @since 0.1.0
 * @category recording
 */
export const holding = <E>(wait: Effect.Effect<void, E>): Effect.Effect<void, E> =>
  Effect.acquireUseRelease(Metric.modify(heldPulls, 1), () => wait, () => Metric.modify(heldPulls, -1))

/** Reads the log's gauges; a failure leaves them as they were (the scrape still answers). */
const readLog = (log: MutationLog["Type"]) =>
  Effect.flatMap(
    log.size,
    (size) => Effect.zipRight(Metric.set(latestSeq, size.latestSeq), Metric.set(logRows, size.rows))
  ).pipe(
    Effect.catchAll((error) =>
      Effect.logWarning("metrics: could not read the mutation log", error).pipe(
        Effect.annotateLogs({ package: "@autosync/server", module: "ServerMetrics" })
      )
    )
  )

/**
 * `GET /metrics`: the log's gauges read, then `render` (the Prometheus text of the process's
 * metrics) answered as `text/plain; version=0.0.4`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRoute = (render: Effect.Effect<string>): Layer.Layer<never, never, MutationLog> =>
  HttpApiBuilder.Router.use((router) =>
    Effect.gen(function*() {
      const log = yield* MutationLog
      yield* touched
      yield* router.get(
        "/metrics",
        Effect.zipRight(
          readLog(log),
          Effect.map(render, (text) => HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4" }))
        )
      )
    })
  )
