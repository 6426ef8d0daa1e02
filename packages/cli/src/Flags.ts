/**
 * The flags and arguments several commands share, each validated before anything runs: a bad
 * value is refused with one line naming the flag (exit code 2). Flags that name a file, a server
 * or a secret also read an `AUTOSYNC_*` environment variable.
 *
 * @since 0.1.0
 */
import { Mutation } from "@autosync/core"
import * as Args from "@effect/cli/Args"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

/**
 * A bad flag or argument value, reported by @effect/cli in one line (exit code 2).
 *
 * @since 0.1.0
 * @category constructors
 */
export const invalid = (message: string): ValidationError.ValidationError =>
  ValidationError.invalidValue(HelpDoc.p(message))

/**
 * `--db`: the replica's SQLite file.
 *
 * @since 0.1.0
 * @category flags
 */
export const localDb = Options.file("db").pipe(
  Options.withFallbackConfig(Config.string("AUTOSYNC_DB")),
  Options.withDefault("./autosync.db"),
  Options.withDescription("The replica's SQLite file (env AUTOSYNC_DB). Defaults to ./autosync.db.")
)

/**
 * `--db`: the server's SQLite file.
 *
 * @since 0.1.0
 * @category flags
 */
export const serverDb = Options.file("db").pipe(
  Options.withFallbackConfig(Config.string("AUTOSYNC_SERVER_DB")),
  Options.optional,
  Options.withDescription("The server's SQLite file (env AUTOSYNC_SERVER_DB). Defaults to ./autosync-server.db.")
)

/**
 * `--database-url`: the server's PostgreSQL database.
 *
 * @since 0.1.0
 * @category flags
 */
export const databaseUrl = Options.redacted("database-url").pipe(
  Options.withFallbackConfig(Config.redacted("AUTOSYNC_DATABASE_URL")),
  Options.optional,
  Options.withDescription("A PostgreSQL URL (postgres://…) instead of a SQLite file (env AUTOSYNC_DATABASE_URL).")
)

/**
 * `--port`.
 *
 * @since 0.1.0
 * @category flags
 */
export const port = Options.integer("port").pipe(
  Options.withFallbackConfig(Config.integer("AUTOSYNC_PORT")),
  Options.withDefault(8787),
  Options.mapEffect((p) =>
    Number.isInteger(p) && p >= 0 && p <= 65535
      ? Effect.succeed(p)
      : Effect.fail(invalid(`--port must be between 0 and 65535, got ${p}`))
  ),
  Options.withDescription("The port to listen on (env AUTOSYNC_PORT; 0 picks a free one). Defaults to 8787.")
)

/**
 * `--host`.
 *
 * @since 0.1.0
 * @category flags
 */
export const host = Options.text("host").pipe(
  Options.withFallbackConfig(Config.string("AUTOSYNC_HOST")),
  Options.withDefault("127.0.0.1"),
  Options.mapEffect((h) => h.length > 0 ? Effect.succeed(h) : Effect.fail(invalid("--host must not be empty"))),
  Options.withDescription("The address to listen on (env AUTOSYNC_HOST). Defaults to 127.0.0.1.")
)

/**
 * `agent --metrics-port`: where to serve `GET /metrics`; none by default.
 *
 * @since 0.1.0
 * @category flags
 */
export const metricsPort = Options.integer("metrics-port").pipe(
  Options.mapEffect((p) =>
    Number.isInteger(p) && p >= 0 && p <= 65535
      ? Effect.succeed(p)
      : Effect.fail(invalid(`--metrics-port must be between 0 and 65535, got ${p}`))
  ),
  Options.optional,
  Options.withDescription(
    "Serve the agent's metrics at GET /metrics on this port, in the Prometheus text format (0 picks a free one). Off by default."
  )
)

/**
 * `agent --metrics-host`.
 *
 * @since 0.1.0
 * @category flags
 */
export const metricsHost = Options.text("metrics-host").pipe(
  Options.withDefault("127.0.0.1"),
  Options.mapEffect((h) => h.length > 0 ? Effect.succeed(h) : Effect.fail(invalid("--metrics-host must not be empty"))),
  Options.withDescription("The address --metrics-port listens on. Defaults to 127.0.0.1.")
)

/**
 * `--server`: an http(s) URL, without a trailing slash.
 *
 * @since 0.1.0
 * @category flags
 */
export const serverUrl = Options.text("server").pipe(
  Options.withFallbackConfig(Config.string("AUTOSYNC_SERVER_URL")),
  Options.mapEffect((raw) => {
    const url = URL.canParse(raw) ? new URL(raw) : undefined
    return url && (url.protocol === "http:" || url.protocol === "https:")
      ? Effect.succeed(raw.replace(/\/+$/, ""))
      : Effect.fail(invalid(`--server must be an http:// or https:// URL, got ${JSON.stringify(raw)}`))
  }),
  Options.withDescription("The sync server's URL, e.g. http://127.0.0.1:8787 (env AUTOSYNC_SERVER_URL).")
)

/**
 * `--token`: a bearer token, never empty.
 *
 * @since 0.1.0
 * @category flags
 */
export const token = Options.redacted("token").pipe(
  Options.withFallbackConfig(Config.redacted("AUTOSYNC_TOKEN")),
  Options.mapEffect((t) =>
    Redacted.value(t).trim().length > 0
      ? Effect.succeed(t)
      : Effect.fail(invalid("--token must not be empty (give the token `autosync token create` printed)"))
  ),
  Options.withDescription("The bearer token from `autosync token create` (env AUTOSYNC_TOKEN).")
)

/**
 * `--json`.
 *
 * @since 0.1.0
 * @category flags
 */
export const json = Options.boolean("json").pipe(Options.withDescription("Print JSON instead of text."))

/**
 * A positive integer flag with a default.
 *
 * @since 0.1.0
 * @category flags
 */
export const positiveInt = (name: string, fallback: number, description: string) =>
  Options.integer(name).pipe(
    Options.withDefault(fallback),
    Options.mapEffect((n) =>
      Number.isSafeInteger(n) && n > 0
        ? Effect.succeed(n)
        : Effect.fail(invalid(`--${name} must be a positive integer, got ${n}`))
    ),
    Options.withDescription(description)
  )

/**
 * `--compact-threshold`: the server compacts its log once this many rows are superseded; 0 is off.
 *
 * @since 0.1.0
 * @category flags
 */
export const compactThreshold = Options.text("compact-threshold").pipe(
  Options.withFallbackConfig(Config.string("AUTOSYNC_COMPACT_THRESHOLD")),
  Options.withDefault("10000"),
  // Parsed here (not Options.integer) so that every bad value is named with the flag.
  Options.mapEffect((raw) =>
    /^\d+$/.test(raw.trim()) && Number.isSafeInteger(Number(raw))
      ? Effect.succeed(Number(raw))
      : Effect.fail(
        invalid(`--compact-threshold must be an integer >= 0 (0 turns compaction off), got ${JSON.stringify(raw)}`)
      )
  ),
  Options.withDescription(
    "Compact the log in the background once this many rows are superseded by newer ones (env AUTOSYNC_COMPACT_THRESHOLD; 0 turns it off). Defaults to 10000."
  )
)

/**
 * An optional duration flag: "500 millis", "30 seconds", or a number of milliseconds.
 *
 * @since 0.1.0
 * @category flags
 */
export const duration = (name: string, description: string) =>
  Options.text(name).pipe(
    Options.mapEffect((raw) =>
      Option.match(Duration.decodeUnknown(/^\d+$/.test(raw) ? Number(raw) : raw), {
        onNone: () =>
          Effect.fail(
            invalid(`--${name} must be a duration such as "500 millis" or "30 seconds", got ${JSON.stringify(raw)}`)
          ),
        onSome: Effect.succeed
      })
    ),
    Options.optional,
    Options.withDescription(description)
  )

// A name checked by the same rule the library applies, reported as the rule words it ("project
// must not be empty"), not as a Schema tree.
const checked = (schema: Schema.Schema<string>, arg: Args.Args<string>) =>
  Args.mapEffect(arg, (value) =>
    Effect.mapError(
      Schema.decodeUnknown(schema)(value),
      (e) => HelpDoc.p(ParseResult.ArrayFormatter.formatErrorSync(e)[0]?.message ?? `invalid ${JSON.stringify(value)}`)
    ))

/**
 * The `project` argument.
 *
 * @since 0.1.0
 * @category arguments
 */
export const projectArg = checked(
  Mutation.Project,
  Args.text({ name: "project" }).pipe(Args.withDescription("The project (a non-empty name)."))
)

/**
 * The `entity` argument.
 *
 * @since 0.1.0
 * @category arguments
 */
export const entityArg = checked(
  Mutation.Entity,
  Args.text({ name: "entity" }).pipe(Args.withDescription("The entity, e.g. \"note\"."))
)

/**
 * The `key` argument.
 *
 * @since 0.1.0
 * @category arguments
 */
export const keyArg = checked(
  Mutation.EntityKey,
  Args.text({ name: "key" }).pipe(Args.withDescription("The document's key."))
)
