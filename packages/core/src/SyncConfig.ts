/**
 * Tuning of a sync manager. `make` fills defaults and refuses nonsense; `fromEnv` reads the
 * same fields from `AUTOSYNC_*` environment variables through Effect's `Config`.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Random from "effect/Random"

/**
 * @since 0.1.0
 * @category models
 */
export interface SyncConfig {
  /** The `sync_state` row this manager drives. Defaults to `"cloud"`. */
  readonly targetKey: string
  /** The lease owner: unique per process. Defaults to a random `worker-…` id. */
  readonly leaseOwner: string
  /**
   * How long a lease is held after each renewal. Defaults to 60 seconds. Shorter: a crashed
   * worker is replaced sooner; longer: fewer writes to the lease row.
   */
  readonly leaseInterval: Duration.Duration
  /**
   * Quiet time after the last `notifyDirty` before a cycle starts; each wake restarts it.
   * Defaults to 500 millis. Larger batches more writes into one push; smaller lowers latency.
   */
  readonly debounce: Duration.Duration
  /**
   * The longest a steady stream of wakes may postpone a cycle. Defaults to 5 seconds.
   */
  readonly debounceMaxWait: Duration.Duration
  /** How often an idle manager runs a cycle to pull. Defaults to 30 seconds. */
  readonly pollInterval: Duration.Duration
  /**
   * Live sync: while running, hold a pull open this long waiting for remote changes, and run a
   * cycle as soon as one arrives. Defaults to 0 (off: remote changes arrive by `pollInterval`).
   * The HTTP server caps the wait at 30 seconds.
   */
  readonly longPollWait: Duration.Duration
  /** Rows per push request. Defaults to 100. */
  readonly pushBatchSize: number
  /** Mutations per pull page. Defaults to 100. */
  readonly pullBatchSize: number
  /**
   * Failures in a row after which the phase becomes `backoff` (the manager still retries at
   * each deadline). Defaults to 10.
   */
  readonly maxConsecutiveFailures: number
  /** The first retry delay. Defaults to 1 second. */
  readonly baseBackoff: Duration.Duration
  /** The longest retry delay. Defaults to 5 minutes. */
  readonly maxBackoff: Duration.Duration
  /**
   * The stall watchdog: cycles in a row without progress (pushes answered but nothing acked, or
   * pulls answered but the cursor stuck behind the server) after which the status says
   * `stalled`. Defaults to 5. Lower tells sooner; higher tolerates a few odd answers.
   */
  readonly stallCycles: number
  /**
   * The stall watchdog: how long live sync's long-poll may fail without a single answer before
   * the status says `stalled`. Defaults to 1 minute (the watcher retries every few seconds).
   */
  readonly watcherStallAfter: Duration.Duration
}

/**
 * Every default except `leaseOwner`, which `make` draws at random.
 *
 * @since 0.1.0
 * @category config
 */
export const defaults: Omit<SyncConfig, "leaseOwner"> = {
  targetKey: "cloud",
  leaseInterval: Duration.seconds(60),
  debounce: Duration.millis(500),
  debounceMaxWait: Duration.seconds(5),
  pollInterval: Duration.seconds(30),
  longPollWait: Duration.zero,
  pushBatchSize: 100,
  pullBatchSize: 100,
  maxConsecutiveFailures: 10,
  baseBackoff: Duration.seconds(1),
  maxBackoff: Duration.minutes(5),
  stallCycles: 5,
  watcherStallAfter: Duration.minutes(1)
}

/**
 * The input of {@link make}: any field, durations as `Duration.DurationInput` ("2 seconds", millis).
 *
 * @since 0.1.0
 * @category models
 */
export type Input = {
  readonly [K in keyof SyncConfig]?: SyncConfig[K] extends Duration.Duration ? Duration.DurationInput : SyncConfig[K]
}

const durationKeys = [
  "leaseInterval",
  "debounce",
  "debounceMaxWait",
  "pollInterval",
  "longPollWait",
  "baseBackoff",
  "maxBackoff",
  "watcherStallAfter"
] as const

const invalid = (field: string, message: string) => ConfigError.InvalidData([field], message)

/**
 * A random lease owner id, from Effect's `Random` (seeded in tests).
 *
 * @since 0.1.0
 * @category constructors
 */
export const randomOwner: Effect.Effect<string> = Effect.map(
  Random.nextIntBetween(0, 0x7fffffff),
  (n) => `worker-${n.toString(36)}`
)

/**
 * Fills defaults and refuses nonsense: non-positive sizes or durations, a negative debounce,
 * `baseBackoff` over `maxBackoff`, `debounceMaxWait` under `debounce`, an empty `targetKey`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (input: Input = {}): Effect.Effect<SyncConfig, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const leaseOwner = input.leaseOwner ?? (yield* randomOwner)
    const durations: Record<string, Duration.Duration> = {}
    for (const key of durationKeys) {
      const raw = input[key]
      const decoded = raw === undefined ? Option.some(defaults[key]) : Duration.decodeUnknown(raw)
      if (decoded._tag === "None") return yield* Effect.fail(invalid(key, `${key} is not a duration: ${String(raw)}`))
      durations[key] = decoded.value
    }
    const config: SyncConfig = {
      ...defaults,
      ...input,
      leaseOwner,
      ...(durations as Pick<SyncConfig, typeof durationKeys[number]>)
    }
    const problem = validate(config)
    return problem ? yield* Effect.fail(invalid(problem[0], problem[1])) : config
  })

const validate = (c: SyncConfig): readonly [string, string] | undefined => {
  if (c.targetKey.length === 0) return ["targetKey", "targetKey must not be empty"]
  if (c.leaseOwner.length === 0) return ["leaseOwner", "leaseOwner must not be empty"]
  for (const key of ["pushBatchSize", "pullBatchSize", "maxConsecutiveFailures", "stallCycles"] as const) {
    if (!Number.isSafeInteger(c[key]) || c[key] <= 0) return [key, `${key} must be a positive integer, got ${c[key]}`]
  }
  for (const key of ["leaseInterval", "pollInterval", "baseBackoff", "maxBackoff", "watcherStallAfter"] as const) {
    if (!Duration.isFinite(c[key]) || Duration.toMillis(c[key]) <= 0) {
      return [key, `${key} must be a positive, finite duration, got ${Duration.format(c[key])}`]
    }
  }
  if (!Duration.isFinite(c.debounce)) return ["debounce", "debounce must be finite"]
  if (!Duration.isFinite(c.longPollWait)) return ["longPollWait", "longPollWait must be finite (0 turns it off)"]
  if (Duration.greaterThan(c.baseBackoff, c.maxBackoff)) {
    return [
      "baseBackoff",
      `baseBackoff (${Duration.format(c.baseBackoff)}) must not exceed maxBackoff (${Duration.format(c.maxBackoff)})`
    ]
  }
  if (!Duration.isFinite(c.debounceMaxWait) || Duration.lessThan(c.debounceMaxWait, c.debounce)) {
    return ["debounceMaxWait", "debounceMaxWait must be finite and at least debounce"]
  }
  return undefined
}

/**
 * The configuration read from the environment (`AUTOSYNC_TARGET_KEY`, `AUTOSYNC_LEASE_OWNER`,
 * `AUTOSYNC_LEASE_INTERVAL`, `AUTOSYNC_DEBOUNCE`, `AUTOSYNC_DEBOUNCE_MAX_WAIT`,
 * `AUTOSYNC_POLL_INTERVAL`, `AUTOSYNC_LONG_POLL_WAIT`, `AUTOSYNC_PUSH_BATCH_SIZE`, `AUTOSYNC_PULL_BATCH_SIZE`,
 * `AUTOSYNC_MAX_CONSECUTIVE_FAILURES`, `AUTOSYNC_BASE_BACKOFF`, `AUTOSYNC_MAX_BACKOFF`,
 * `AUTOSYNC_STALL_CYCLES`, `AUTOSYNC_WATCHER_STALL_AFTER`;
 * durations as "500 millis", "30 seconds"), each field optional.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Input> = Config.all({
  targetKey: Config.option(Config.string("TARGET_KEY")),
  leaseOwner: Config.option(Config.string("LEASE_OWNER")),
  leaseInterval: Config.option(Config.duration("LEASE_INTERVAL")),
  debounce: Config.option(Config.duration("DEBOUNCE")),
  debounceMaxWait: Config.option(Config.duration("DEBOUNCE_MAX_WAIT")),
  pollInterval: Config.option(Config.duration("POLL_INTERVAL")),
  longPollWait: Config.option(Config.duration("LONG_POLL_WAIT")),
  pushBatchSize: Config.option(Config.integer("PUSH_BATCH_SIZE")),
  pullBatchSize: Config.option(Config.integer("PULL_BATCH_SIZE")),
  maxConsecutiveFailures: Config.option(Config.integer("MAX_CONSECUTIVE_FAILURES")),
  baseBackoff: Config.option(Config.duration("BASE_BACKOFF")),
  maxBackoff: Config.option(Config.duration("MAX_BACKOFF")),
  stallCycles: Config.option(Config.integer("STALL_CYCLES")),
  watcherStallAfter: Config.option(Config.duration("WATCHER_STALL_AFTER"))
}).pipe(
  Config.nested("AUTOSYNC"),
  Config.map((fields) => {
    const input: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(fields)) if (value._tag === "Some") input[key] = value.value
    return input as Input
  })
)

/**
 * Reads {@link config} from the environment, lets `overrides` win, then {@link make}s it.
 *
 * @since 0.1.0
 * @category config
 */
export const fromEnv = (overrides: Input = {}): Effect.Effect<SyncConfig, ConfigError.ConfigError> =>
  Effect.flatMap(config, (fromEnvironment) => make({ ...fromEnvironment, ...overrides }))
