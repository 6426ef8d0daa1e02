/**
 * The `autosync` command: `serve`, `token create`, `agent`, `status`, `init`, `enroll`, `unenroll`,
 * `put`, `get`, `list` and `demo`. Every flag is validated before anything runs; flags that
 * name a file, a server or a secret also read an `AUTOSYNC_*` environment variable.
 *
 * @since 0.1.0
 */
import { LocalStore, Status, SyncConfig } from "@autosync/core"
import { Documents } from "@autosync/sqlite"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as CliError from "./CliError.js"
import * as Reidentify from "./Reidentify.js"
import * as Replica from "./Replica.js"

// ---------------------------------------------------------------------------------------------
// shared flags
// ---------------------------------------------------------------------------------------------

const invalid = (message: string) => ValidationError.invalidValue(HelpDoc.p(message))

const localDb = Options.file("db").pipe(
  Options.withFallbackConfig(Config.string("AUTOSYNC_DB")),
  Options.withDefault("./autosync.db"),
  Options.withDescription("The replica's SQLite file (env AUTOSYNC_DB). Defaults to ./autosync.db.")
)

const serverDb = Options.file("db").pipe(
  Options.withFallbackConfig(Config.string("AUTOSYNC_SERVER_DB")),
  Options.optional,
  Options.withDescription("The server's SQLite file (env AUTOSYNC_SERVER_DB). Defaults to ./autosync-server.db.")
)

const databaseUrl = Options.redacted("database-url").pipe(
  Options.withFallbackConfig(Config.redacted("AUTOSYNC_DATABASE_URL")),
  Options.optional,
  Options.withDescription("A PostgreSQL URL (postgres://…) instead of a SQLite file (env AUTOSYNC_DATABASE_URL).")
)

const port = Options.integer("port").pipe(
  Options.withFallbackConfig(Config.integer("AUTOSYNC_PORT")),
  Options.withDefault(8787),
  Options.mapEffect((p) =>
    Number.isInteger(p) && p >= 0 && p <= 65535
      ? Effect.succeed(p)
      : Effect.fail(invalid(`--port must be between 0 and 65535, got ${p}`))
  ),
  Options.withDescription("The port to listen on (env AUTOSYNC_PORT; 0 picks a free one). Defaults to 8787.")
)

const host = Options.text("host").pipe(
  Options.withFallbackConfig(Config.string("AUTOSYNC_HOST")),
  Options.withDefault("127.0.0.1"),
  Options.withDescription("The address to listen on (env AUTOSYNC_HOST). Defaults to 127.0.0.1.")
)

const serverUrl = Options.text("server").pipe(
  Options.withFallbackConfig(Config.string("AUTOSYNC_SERVER_URL")),
  Options.mapEffect((raw) => {
    const url = URL.canParse(raw) ? new URL(raw) : undefined
    return url && (url.protocol === "http:" || url.protocol === "https:")
      ? Effect.succeed(raw.replace(/\/+$/, ""))
      : Effect.fail(invalid(`--server must be an http:// or https:// URL, got ${JSON.stringify(raw)}`))
  }),
  Options.withDescription("The sync server's URL, e.g. http://127.0.0.1:8787 (env AUTOSYNC_SERVER_URL).")
)

const token = Options.redacted("token").pipe(
  Options.withFallbackConfig(Config.redacted("AUTOSYNC_TOKEN")),
  Options.withDescription("The bearer token from `autosync token create` (env AUTOSYNC_TOKEN).")
)

const json = Options.boolean("json").pipe(Options.withDescription("Print JSON instead of text."))

const positiveInt = (name: string, fallback: number, description: string) =>
  Options.integer(name).pipe(
    Options.withDefault(fallback),
    Options.mapEffect((n) =>
      Number.isSafeInteger(n) && n > 0
        ? Effect.succeed(n)
        : Effect.fail(invalid(`--${name} must be a positive integer, got ${n}`))
    ),
    Options.withDescription(description)
  )

const duration = (name: string, description: string) =>
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

const projectArg = Args.text({ name: "project" }).pipe(Args.withDescription("The project (a non-empty name)."))
const entityArg = Args.text({ name: "entity" }).pipe(Args.withDescription("The entity, e.g. \"note\"."))
const keyArg = Args.text({ name: "key" }).pipe(Args.withDescription("The document's key."))

// The server (HTTP, PostgreSQL) and the demo load only for the commands that use them: every
// other command starts faster without them.
const loadServer = Effect.promise(() => import("@autosync/server"))
const loadDemo = Effect.promise(() => import("./Demo.js"))

// Errors of the layers below become one-line messages with an exit code.
const explain = <A, R>(effect: Effect.Effect<A, unknown, R>): Effect.Effect<A, CliError.CliError, R> =>
  Effect.mapError(effect, (error) => {
    if (error instanceof CliError.CliError) return error
    const message = typeof error === "object" && error !== null && "message" in error
      ? String(error.message)
      : String(error)
    return CliError.failure(message)
  })

// ---------------------------------------------------------------------------------------------
// serve and token
// ---------------------------------------------------------------------------------------------

const serverStore = (db: Option.Option<string>, url: Option.Option<Redacted.Redacted>) =>
  Option.isSome(db) && Option.isSome(url)
    ? Effect.fail(CliError.usage("give either --db or --database-url, not both"))
    : Effect.succeed(
      Option.match(url, {
        onNone: () => ({ _tag: "sqlite" as const, file: Option.getOrElse(db, () => "./autosync-server.db") }),
        onSome: (u) => ({ _tag: "pg" as const, url: u })
      })
    )

const serve = Command.make(
  "serve",
  {
    db: serverDb,
    databaseUrl,
    port,
    host,
    bodyLimit: positiveInt("body-limit", 8 * 1024 * 1024, "The largest request body in bytes. Defaults to 8 MiB.")
  },
  (opts) =>
    Effect.gen(function*() {
      const where = yield* serverStore(opts.db, opts.databaseUrl)
      const { SyncServer } = yield* loadServer
      const options = { port: opts.port, host: opts.host, bodyLimit: opts.bodyLimit }
      const server = where._tag === "sqlite"
        ? SyncServer.layerSqlite({ ...options, file: where.file })
        : SyncServer.layerPg({ ...options, url: where.url })
      yield* Layer.launch(
        Layer.effectDiscard(
          Effect.flatMap(HttpServer.HttpServer, (s) =>
            Console.log(
              `autosync server listening on ${HttpServer.formatAddress(s.address)} (${
                where._tag === "sqlite" ? where.file : "PostgreSQL"
              }); Ctrl-C stops it`
            ))
        ).pipe(Layer.provide(server))
      )
    }).pipe(explain)
).pipe(Command.withDescription("Run the sync server on a SQLite file (default) or PostgreSQL, until Ctrl-C."))

const tokenCreate = Command.make(
  "create",
  {
    db: serverDb,
    databaseUrl,
    projects: Options.text("project").pipe(
      Options.repeated,
      Options.withDescription("A project the token may read and write; repeat for several.")
    )
  },
  (opts) =>
    Effect.gen(function*() {
      if (opts.projects.length === 0) return yield* CliError.usage("token create needs at least one --project")
      const where = yield* serverStore(opts.db, opts.databaseUrl)
      const { PgMutationLog, SqliteMutationLog, Tokens } = yield* loadServer
      const client = where._tag === "sqlite"
        ? SqliteMutationLog.layerClient({ file: where.file })
        : PgMutationLog.layerClient({ url: where.url })
      const created = yield* Effect.flatMap(Tokens.Tokens, (t) => t.create(opts.projects)).pipe(
        Effect.provide(Tokens.layer.pipe(Layer.provide(client)))
      )
      yield* Console.error(`token for ${opts.projects.join(", ")} (shown once; keep it secret):`)
      yield* Console.log(created)
    }).pipe(explain)
).pipe(Command.withDescription("Create a token allowed the given projects; prints it once, on the last line."))

const tokenCommand = Command.make("token").pipe(
  Command.withDescription("Manage the server's tokens."),
  Command.withSubcommands([tokenCreate])
)

// ---------------------------------------------------------------------------------------------
// agent and status
// ---------------------------------------------------------------------------------------------

const statusLine = (s: Status.Status, at: Date) =>
  [
    at.toISOString(),
    s.phase,
    s.reasonCode ? `reason=${s.reasonCode}` : undefined,
    s.consecutiveFailures > 0 ? `failures=${s.consecutiveFailures}` : undefined,
    s.backoffUntil ? `retry_at=${s.backoffUntil.toISOString()}` : undefined,
    s.lastError ? `error=${JSON.stringify(s.lastError)}` : undefined
  ].filter((part) => part !== undefined).join(" ")

const encodeStatus = Schema.encodeSync(Status.Status)

const agent = Command.make(
  "agent",
  {
    db: localDb,
    server: serverUrl,
    token,
    json,
    debounce: duration("debounce", "Quiet time after a local write before pushing. Defaults to 500 millis."),
    pollInterval: duration("poll-interval", "How often to pull when idle. Defaults to 30 seconds."),
    longPoll: duration(
      "long-poll",
      "How long to hold a pull open for live sync (0 turns it off). Defaults to 25 seconds."
    )
  },
  (opts) =>
    Effect.scoped(Effect.gen(function*() {
      const overrides: SyncConfig.Input = {
        longPollWait: Option.getOrElse(opts.longPoll, () => Duration.seconds(25)),
        ...Option.match(opts.debounce, { onNone: () => ({}), onSome: (debounce) => ({ debounce }) }),
        ...Option.match(opts.pollInterval, { onNone: () => ({}), onSome: (pollInterval) => ({ pollInterval }) })
      }
      const config = yield* SyncConfig.fromEnv(overrides)
      // Writes by other processes (`autosync put`, another app on the file) wake it within 250 ms.
      const replica = yield* Replica.run({
        file: opts.db,
        serverUrl: opts.server,
        token: opts.token,
        config,
        watchJournal: "250 millis"
      })
      yield* Console.error(
        `autosync agent: ${opts.db} ⇄ ${opts.server} as ${replica.store.clientId} (lease owner ${config.leaseOwner}); Ctrl-C stops it`
      )
      yield* Stream.runForEach(
        replica.manager.changes,
        (s) =>
          Effect.flatMap(Clock.currentTimeMillis, (t) =>
            Console.log(opts.json ? JSON.stringify(encodeStatus(s)) : statusLine(s, new Date(t))))
      )
    })).pipe(explain)
).pipe(
  Command.withDescription("Sync a local file with a server until Ctrl-C, printing each status change on one line.")
)

const status = Command.make("status", { db: localDb, json }, (opts) =>
  Effect.gen(function*() {
    const store = yield* LocalStore.LocalStore
    const state = yield* store.getSyncState("cloud")
    const pending = yield* store.countPending("cloud")
    const nonEnrolled = yield* store.skipAckNonEnrolledMutations("cloud")
    const enrolled = yield* store.listEnrolled
    const now = new Date(yield* Clock.currentTimeMillis)
    const leaseActive = state.leaseOwner !== undefined && state.leaseUntil !== undefined && state.leaseUntil > now
    // The file holds no live phase (that lives in the running manager): derive one from the state.
    const phase: Status.Phase = state.consecutiveFailures > 0
      ? "backoff"
      : state.lastPulledSeq > 0 || state.lastAckedSeq > 0
      ? "healthy"
      : "idle"
    const report = {
      file: opts.db,
      client_id: store.clientId,
      phase,
      pending,
      non_enrolled_pending: nonEnrolled,
      enrolled,
      last_enqueued_seq: state.lastEnqueuedSeq,
      last_acked_seq: state.lastAckedSeq,
      last_pulled_seq: state.lastPulledSeq,
      consecutive_failures: state.consecutiveFailures,
      last_error: state.lastError ?? null,
      reason_code: state.reasonCode ?? null,
      backoff_until: state.backoffUntil?.toISOString() ?? null,
      lease_owner: leaseActive ? state.leaseOwner! : null,
      lease_until: leaseActive ? state.leaseUntil!.toISOString() : null
    }
    if (opts.json) return yield* Console.log(JSON.stringify(report, null, 2))
    const rows: Array<[string, unknown]> = [
      ["file", report.file],
      ["client id", report.client_id],
      ["phase", report.phase],
      ["pending rows", `${report.pending}${nonEnrolled > 0 ? ` (${nonEnrolled} in projects not enrolled)` : ""}`],
      ["enrolled", enrolled.length > 0 ? enrolled.join(", ") : "(none: nothing is pushed until you `autosync enroll`)"],
      ["last pulled seq", report.last_pulled_seq],
      ["last acked seq", report.last_acked_seq],
      ["failures", report.consecutive_failures],
      ["last error", report.last_error ?? "-"],
      ["reason", report.reason_code ?? "-"],
      ["retry at", report.backoff_until ?? "-"],
      ["lease holder", report.lease_owner ? `${report.lease_owner} until ${report.lease_until}` : "(free)"]
    ]
    yield* Console.log(rows.map(([k, v]) => `${k.padEnd(16)} ${v}`).join("\n"))
  }).pipe(Effect.provide(Replica.layerExisting(opts.db)), explain)).pipe(
    Command.withDescription("Show a replica's sync state from its file alone (no server needed).")
  )

// ---------------------------------------------------------------------------------------------
// enrollment and documents
// ---------------------------------------------------------------------------------------------

const init = Command.make(
  "init",
  { db: localDb },
  (opts) =>
    Effect.flatMap(LocalStore.LocalStore, (s) => Console.log(`replica ${opts.db} ready (client id ${s.clientId})`))
      .pipe(
        Effect.provide(Replica.layerLocal(opts.db)),
        explain
      )
).pipe(Command.withDescription("Create (or check and migrate) a replica file and print its client id."))

const enroll = Command.make(
  "enroll",
  { db: localDb, project: projectArg },
  (opts) =>
    Effect.flatMap(LocalStore.LocalStore, (s) => s.enroll(opts.project)).pipe(
      Effect.zipRight(Console.log(`enrolled ${opts.project}: its local writes will be pushed`)),
      Effect.provide(Replica.layerLocal(opts.db)),
      explain
    )
).pipe(Command.withDescription("Enroll a project: only enrolled projects' local writes are pushed."))

const unenroll = Command.make(
  "unenroll",
  { db: localDb, project: projectArg },
  (opts) =>
    Effect.flatMap(LocalStore.LocalStore, (s) => s.unenroll(opts.project)).pipe(
      Effect.zipRight(Console.log(`unenrolled ${opts.project}: its local writes stay pending`)),
      Effect.provide(Replica.layerLocal(opts.db)),
      explain
    )
).pipe(Command.withDescription("Stop pushing a project's local writes (they stay pending)."))

const parseJson = (raw: string) =>
  Effect.try({
    try: () => JSON.parse(raw) as unknown,
    catch: () => CliError.usage(`the value must be JSON (quote strings: '"text"'), got ${JSON.stringify(raw)}`)
  })

const put = Command.make(
  "put",
  { db: localDb, project: projectArg, entity: entityArg, key: keyArg, value: Args.text({ name: "json" }) },
  (opts) =>
    // The JSON is checked before the file is opened: a bad value must not create a replica.
    Effect.flatMap(parseJson(opts.value), (value) =>
      Effect.gen(function*() {
        const documents = yield* Documents.Documents
        const seq = yield* documents.put(opts.project, opts.entity, opts.key, value).pipe(
          Effect.mapError((e) => e.reason === "invalid_input" ? CliError.usage(e.message) : CliError.failure(e.message))
        )
        yield* Console.log(`stored ${opts.project}/${opts.entity}/${opts.key} (journal seq ${seq})`)
      }).pipe(Effect.provide(Replica.layerLocal(opts.db)))).pipe(explain)
).pipe(Command.withDescription("Write a document (JSON) locally; a running agent pushes it."))

const get = Command.make(
  "get",
  { db: localDb, project: projectArg, entity: entityArg, key: keyArg },
  (opts) =>
    Effect.gen(function*() {
      const documents = yield* Documents.Documents
      const value = yield* documents.get(opts.project, opts.entity, opts.key)
      if (Option.isNone(value)) {
        return yield* CliError.notFound(`no document ${opts.project}/${opts.entity}/${opts.key}`)
      }
      yield* Console.log(JSON.stringify(value.value))
    }).pipe(Effect.provide(Replica.layerExisting(opts.db)), explain)
).pipe(
  Command.withDescription("Print a document's JSON (exit code 3 when there is none).")
)

const list = Command.make(
  "list",
  { db: localDb, json, project: projectArg, entity: Args.optional(entityArg) },
  (opts) =>
    Effect.gen(function*() {
      const documents = yield* Documents.Documents
      const docs = yield* documents.list(opts.project, Option.getOrUndefined(opts.entity))
      if (opts.json) {
        return yield* Console.log(
          JSON.stringify(docs.map((d) => ({ entity: d.entity, key: d.entityKey, value: d.value })))
        )
      }
      for (const d of docs) yield* Console.log(`${d.entity}\t${d.entityKey}\t${JSON.stringify(d.value)}`)
    }).pipe(Effect.provide(Replica.layerExisting(opts.db)), explain)
).pipe(Command.withDescription("List a project's documents (of one entity when given): entity, key, JSON."))

// ---------------------------------------------------------------------------------------------
// demo and the root
// ---------------------------------------------------------------------------------------------

const demo = Command.make(
  "demo",
  {
    rows: positiveInt("rows", 10_000, "How many documents replica A writes. Defaults to 10000."),
    batchSize: positiveInt(
      "batch-size",
      500,
      "Rows per write transaction, push and pull page (at most 1000). Defaults to 500."
    ).pipe(
      Options.mapEffect((n) =>
        n <= 1000 ? Effect.succeed(n) : Effect.fail(invalid(`--batch-size must be at most 1000, got ${n}`))
      )
    ),
    json: Options.boolean("json").pipe(Options.withDescription("Print the figures as one JSON object at the end."))
  },
  (opts) => Effect.flatMap(loadDemo, (Demo) => Demo.run(opts)).pipe(explain)
).pipe(
  Command.withDescription(
    "Start a server and two replicas in a temporary directory, write on A, watch B catch up, print the timings."
  )
)

/**
 * The root command.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("autosync").pipe(
  Command.withDescription("Local-first replication: a sync server, a sync agent, and the tools around them."),
  Command.withSubcommands([
    serve,
    tokenCommand,
    agent,
    status,
    init,
    enroll,
    unenroll,
    put,
    get,
    list,
    demo,
    Reidentify.command
  ])
)

/**
 * Parses `argv` (as `process.argv`) and runs the command.
 *
 * @since 0.1.0
 * @category commands
 */
export const run = Command.run(command, { name: "autosync", version: "0.1.0" })
