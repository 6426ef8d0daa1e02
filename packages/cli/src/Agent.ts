/**
 * `autosync agent`: syncs a replica with a server until Ctrl-C or SIGTERM. Each status change is
 * one line on stdout (text or `--json`) saying how many rows were pushed and pulled since the
 * previous line, and `stalled=KIND` while the stall watchdog sees no progress; while another process holds the file's lease, stderr says who; a clean stop
 * prints one line once the lease is released.
 *
 * @since 0.1.0
 */
import { type LocalStore, Metrics, Status, SyncConfig } from "@autosync/core"
import * as Command from "@effect/cli/Command"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as CliError from "./CliError.js"
import * as Flags from "./Flags.js"
import * as Replica from "./Replica.js"

interface Moved {
  readonly pushed: number
  readonly pulled: number
}

/**
 * Counts what the manager moves through the store: rows acked by the server (pushed) and rows
 * applied from pulled pages (pulled). The counts are taken (and reset) by each status line.
 */
const counting = (moved: Ref.Ref<Moved>) => (store: LocalStore.LocalStore["Type"]): LocalStore.LocalStore["Type"] => ({
  ...store,
  ackMutationSeqs: (targetKey, acks) =>
    Effect.tap(
      store.ackMutationSeqs(targetKey, acks),
      () => Ref.update(moved, (m) => ({ ...m, pushed: m.pushed + acks.length }))
    ),
  applyPulledMutations: (targetKey, mutations, options) =>
    Effect.tap(
      store.applyPulledMutations(targetKey, mutations, options),
      (results) => Ref.update(moved, (m) => ({ ...m, pulled: m.pulled + results.length }))
    ),
  applyPulledMutation: (targetKey, mutation) =>
    Effect.tap(
      store.applyPulledMutation(targetKey, mutation),
      () => Ref.update(moved, (m) => ({ ...m, pulled: m.pulled + 1 }))
    )
})

/**
 * Says on stderr who holds the lease when it is refused (once per holder, not every cycle), and
 * remembers whether this agent ever held it (for the line it prints when it stops).
 */
const reportingLease =
  (file: string, reported: Ref.Ref<string | undefined>, everHeld: Ref.Ref<boolean>) =>
  (store: LocalStore.LocalStore["Type"]): LocalStore.LocalStore["Type"] => ({
    ...store,
    acquireLease: (targetKey, owner, ttl, now) =>
      Effect.tap(store.acquireLease(targetKey, owner, ttl, now), (held) =>
        held
          ? Effect.zipRight(Ref.set(reported, undefined), Ref.set(everHeld, true))
          : Effect.flatMap(store.getSyncState(targetKey), (state) => {
            const holder = state.leaseOwner ?? "another process"
            return Effect.flatMap(Ref.getAndSet(reported, holder), (previous) =>
              previous === holder ? Effect.void : Console.error(
                `autosync agent: ${file} is being synced by ${holder} (lease until ${
                  state.leaseUntil?.toISOString() ?? "?"
                }); waiting for it to stop or its lease to expire`
              ))
          }).pipe(Effect.catchAll(() =>
            Effect.void
          )))
  })

const statusLine = (s: Status.Status, at: Date, moved: Moved) =>
  [
    at.toISOString(),
    s.phase,
    `pushed=${moved.pushed}`,
    `pulled=${moved.pulled}`,
    s.reasonCode ? `reason=${s.reasonCode}` : undefined,
    s.consecutiveFailures > 0 ? `failures=${s.consecutiveFailures}` : undefined,
    s.backoffUntil ? `retry_at=${s.backoffUntil.toISOString()}` : undefined,
    s.lastError ? `error=${JSON.stringify(s.lastError)}` : undefined,
    // The watchdog's verdict: no progress although the phase may say healthy.
    s.stalled ? `stalled=${s.stalled.kind} stalled_since=${s.stalled.since.toISOString()}` : undefined,
    s.stalled ? `stall=${JSON.stringify(s.stalled.why)}` : undefined
  ].filter((part) => part !== undefined).join(" ")

const encodeStatus = Schema.encodeSync(Status.Status)

interface AgentOptions {
  readonly db: string
  readonly server: string
  readonly token: Redacted.Redacted
  readonly json: boolean
  readonly debounce: Option.Option<Duration.Duration>
  readonly pollInterval: Option.Option<Duration.Duration>
  readonly longPoll: Option.Option<Duration.Duration>
  readonly metricsPort: Option.Option<number>
  readonly metricsHost: string
}

const otlpWanted = Effect.map(
  Config.all([
    Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_ENDPOINT")),
    Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
  ]),
  ([base, full]) => Option.isSome(base) || Option.isSome(full)
).pipe(Effect.orElseSucceed(() => false))

/**
 * `--metrics-port` (the manager's metrics at `GET /metrics`) and OTLP traces: the exporters are
 * loaded only when asked for.
 */
const observed = (opts: AgentOptions) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    if (Option.isNone(opts.metricsPort) && !(yield* otlpWanted)) return yield* effect
    const Telemetry = yield* Effect.promise(() => import("./Telemetry.js"))
    return yield* Effect.scoped(Effect.gen(function*() {
      if (Option.isSome(opts.metricsPort)) {
        yield* Metrics.register
        const render = yield* Telemetry.prometheus("autosync-agent")
        const listening = yield* Layer.build(
          Telemetry.serveMetrics(render, { port: opts.metricsPort.value, host: opts.metricsHost })
        )
        const address = HttpServer.formatAddress(Context.get(listening, HttpServer.HttpServer).address)
        yield* Console.error(`autosync agent: metrics at ${address}/metrics`)
      }
      return yield* effect
    })).pipe(Effect.provide(Telemetry.tracing("autosync-agent")))
  })

// Runs until interrupted; `everHeld` says whether the lease was ever this agent's.
const agent = (opts: AgentOptions, everHeld: Ref.Ref<boolean>) =>
  Effect.scoped(Effect.gen(function*() {
    const overrides: SyncConfig.Input = {
      longPollWait: Option.getOrElse(opts.longPoll, () => Duration.seconds(25)),
      ...Option.match(opts.debounce, { onNone: () => ({}), onSome: (debounce) => ({ debounce }) }),
      ...Option.match(opts.pollInterval, { onNone: () => ({}), onSome: (pollInterval) => ({ pollInterval }) })
    }
    const config = yield* SyncConfig.fromEnv(overrides)
    const moved = yield* Ref.make<Moved>({ pushed: 0, pulled: 0 })
    const leaseHolder = yield* Ref.make<string | undefined>(undefined)
    // Writes by other processes (`autosync put`, another app on the file) wake it within 250 ms.
    const replica = yield* Replica.run({
      file: opts.db,
      serverUrl: opts.server,
      token: opts.token,
      config,
      watchJournal: "250 millis",
      wrapStore: (store) => reportingLease(opts.db, leaseHolder, everHeld)(counting(moved)(store))
    })
    yield* Console.error(
      `autosync agent: ${opts.db} ⇄ ${opts.server} as ${replica.store.clientId} (lease owner ${config.leaseOwner}); Ctrl-C stops it`
    )
    yield* Stream.runForEach(replica.manager.changes, (s) =>
      Effect.gen(function*() {
        const at = new Date(yield* Clock.currentTimeMillis)
        const since = yield* Ref.getAndSet(moved, { pushed: 0, pulled: 0 })
        yield* Console.log(
          opts.json
            ? JSON.stringify({ at: at.toISOString(), ...encodeStatus(s), ...since })
            : statusLine(s, at, since)
        )
      }))
  }))

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "agent",
  {
    db: Flags.localDb,
    server: Flags.serverUrl,
    token: Flags.token,
    json: Flags.json,
    debounce: Flags.duration("debounce", "Quiet time after a local write before pushing. Defaults to 500 millis."),
    pollInterval: Flags.duration("poll-interval", "How often to pull when idle. Defaults to 30 seconds."),
    longPoll: Flags.duration(
      "long-poll",
      "How long to hold a pull open for live sync (0 turns it off). Defaults to 25 seconds."
    ),
    metricsPort: Flags.metricsPort,
    metricsHost: Flags.metricsHost
  },
  (opts) =>
    Effect.flatMap(Ref.make(false), (everHeld) =>
      agent(opts, everHeld).pipe(
        // Runs after the scope closed, i.e. after the manager stopped and released the lease.
        Effect.onInterrupt(() =>
          Effect.flatMap(
            Ref.get(everHeld),
            (held) => Console.error(held ? "autosync agent: stopped, lease released" : "autosync agent: stopped")
          )
        )
      )).pipe(observed(opts), CliError.explain)
).pipe(
  Command.withDescription(
    "Sync a local file with a server until Ctrl-C, printing each status change on one line with the rows pushed and pulled since the last."
  )
)
