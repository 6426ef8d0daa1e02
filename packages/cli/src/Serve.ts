/**
 * `autosync serve`: the sync server on a SQLite file or PostgreSQL, until Ctrl-C, with optional
 * flow control (`--max-inflight`, `--rate-limit`: 503/429 with `Retry-After`). A busy port,
 * a replica's file or one that is not SQLite is refused in one line, and a file the failed start
 * created is removed.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as CliError from "./CliError.js"
import * as Flags from "./Flags.js"
import * as ServerStore from "./ServerStore.js"

// The listener's error (node's EADDRINUSE, EACCES…) as something a person can act on.
const listenError = (port: number, host: string, cause: unknown) => {
  const code = typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : undefined
  switch (code) {
    case "EADDRINUSE":
      return CliError.failure(
        `port ${port} on ${host} is already in use (another server?): choose another with --port (0 picks a free one)`
      )
    case "EACCES":
      return CliError.failure(`not allowed to listen on port ${port} on ${host}: choose a port above 1023 with --port`)
    case "EADDRNOTAVAIL":
    case "ENOTFOUND":
      return CliError.failure(`cannot listen on ${host}: no such address on this machine (check --host)`)
    default:
      return CliError.failure(
        `cannot listen on ${host}:${port}: ${
          typeof cause === "object" && cause !== null && "message" in cause ? String(cause.message) : String(cause)
        }`
      )
  }
}

/**
 * `--max-inflight N`: the most sync requests handled at once (held long-polls left out).
 *
 * @since 0.1.0
 * @category flags
 */
export const maxInflight = Options.integer("max-inflight").pipe(
  Options.mapEffect((n) =>
    Number.isSafeInteger(n) && n > 0
      ? Effect.succeed(n)
      : Effect.fail(Flags.invalid(`--max-inflight must be a positive integer, got ${n}`))
  ),
  Options.optional,
  Options.withDescription(
    "Flow control: the most push/pull requests handled at once (held long-polls do not count); more get 503 " +
      "with Retry-After. Defaults to no bound."
  )
)

/**
 * `--rate-limit N/s`: sync requests per second per token.
 *
 * @since 0.1.0
 * @category flags
 */
export const rateLimit = Options.text("rate-limit").pipe(
  Options.mapEffect((raw) => {
    const match = /^\s*(\d+(?:\.\d+)?)\s*\/\s*s\s*$/.exec(raw)
    const rate = match === null ? Number.NaN : Number(match[1])
    return rate > 0 && Number.isFinite(rate)
      ? Effect.succeed(rate)
      : Effect.fail(
        Flags.invalid(`--rate-limit must be a positive rate per second such as 20/s, got ${JSON.stringify(raw)}`)
      )
  }),
  Options.optional,
  Options.withDescription(
    "Flow control: the most push/pull requests per second per token, as N/s (bursts up to N); more get 429 " +
      "with Retry-After. Defaults to no limit."
  )
)

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "serve",
  {
    db: Flags.serverDb,
    databaseUrl: Flags.databaseUrl,
    port: Flags.port,
    host: Flags.host,
    bodyLimit: Flags.positiveInt(
      "body-limit",
      8 * 1024 * 1024,
      "The largest request body in bytes. Defaults to 8 MiB."
    ),
    compactThreshold: Flags.compactThreshold,
    compactInterval: Flags.duration(
      "compact-interval",
      "How often the log is checked against --compact-threshold. Defaults to 30 seconds."
    ),
    maxInflight,
    rateLimit
  },
  (opts) =>
    Effect.gen(function*() {
      const where = yield* ServerStore.choose(opts.db, opts.databaseUrl)
      const { SyncServer } = yield* ServerStore.load
      const Telemetry = yield* Effect.promise(() => import("./Telemetry.js"))
      // GET /metrics, open like /v1/health: Prometheus scrapes without a token (see ServerMetrics).
      const metrics = yield* Telemetry.prometheus("autosync-server")
      const options = {
        port: opts.port,
        host: opts.host,
        bodyLimit: opts.bodyLimit,
        metrics,
        compactThreshold: opts.compactThreshold,
        compactInterval: Option.getOrUndefined(opts.compactInterval),
        maxInflight: Option.getOrUndefined(opts.maxInflight),
        rateLimit: Option.getOrUndefined(opts.rateLimit)
      }
      const server = where._tag === "sqlite"
        ? SyncServer.layerSqlite({ ...options, file: where.file })
        : SyncServer.layerPg({ ...options, url: where.url })
      yield* ServerStore.withoutLeftovers(
        where,
        Layer.launch(
          Layer.effectDiscard(
            Effect.flatMap(HttpServer.HttpServer, (s) =>
              Console.log(
                `autosync server listening on ${HttpServer.formatAddress(s.address)} (${
                  ServerStore.describe(where)
                }); Ctrl-C stops it`
              ))
          ).pipe(Layer.provide(server))
        ).pipe(
          Effect.catchTag("ServeError", (e) => Effect.fail(listenError(opts.port, opts.host, e.cause))),
          Effect.provide(Telemetry.tracing("autosync-server"))
        )
      )
    }).pipe(Effect.scoped, CliError.explain)
).pipe(
  Command.withDescription(
    "Run the sync server on a SQLite file (default) or PostgreSQL, until Ctrl-C. Logs one line per request on stderr; serves its metrics at GET /metrics (Prometheus text, no token) and sends traces over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set."
  )
)
