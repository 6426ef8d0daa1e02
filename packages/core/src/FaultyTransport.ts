/**
 * A flaky network for tests: wraps any `CloudTransport` and, per request, injects the failures a
 * real network and server produce. Every choice comes from Effect's `Random` and every wait from
 * Effect's `Clock`, so a seed makes the run exactly repeatable and `TestClock` makes the waits free.
 *
 * Faults, each with its own probability per request (all default to 0):
 *
 * | fault          | what the caller sees                                              | the server       |
 * | -------------- | ----------------------------------------------------------------- | ---------------- |
 * | `dropRequest`  | `transport_failed`, no status                                     | never saw it     |
 * | `dropResponse` | `transport_failed`, no status                                     | handled it       |
 * | `duplicate`    | the answer to the second of two identical requests                | handled it twice |
 * | `serverError`  | `transport_failed`, status 500                                    | never saw it     |
 * | `unauthorized` | `auth_required`, status 401                                       | never saw it     |
 * | `forbidden`    | `policy_forbidden`, status 403                                    | never saw it     |
 * | `timeout`      | after `timeout` (plus a long-poll's wait): `transport_failed`     | never saw it     |
 * | `delay`        | a wait uniform in `[0, maxDelay]`, then whatever else was drawn   | as drawn         |
 *
 * The health probe (`health`, when the wrapped transport has one) fails while faults are on and
 * is forwarded while they are off: a storm looks like an outage, switching it off like the
 * server's return.
 *
 * A request gets at most one of the first seven (they are exclusive: their probabilities must add
 * up to at most 1) and, independently, may be delayed first. Each request draws exactly three
 * numbers from the `Random`, whatever the probabilities, so the sequence of faults depends only on
 * the seed and the order of requests. With `seed` the wrapper has a generator of its own; without
 * it, it draws from the caller's `Random` (`Effect.withRandom(Random.make(seed))` pins that).
 *
 * Faults can be switched off (`setEnabled(false)`, or the `enabled` option: any `Effect<boolean>`,
 * a `Ref<boolean>` included) so that a test can let replicas settle after a storm; while off, the
 * wrapper forwards requests untouched and draws nothing. `counts` and `history` say what was injected.
 *
 * Testing an application against a flaky network, with `@effect/vitest` (`it.effect` and `it.scoped`
 * provide `TestClock`): storm, switch the faults off, let the manager catch up, then assert.
 *
 * ```ts
 * import { CloudTransport, LocalStore, SyncConfig, SyncManager } from "@autosync/core"
 * import { FaultyTransport } from "@autosync/core/testing"
 * import { assert, it } from "@effect/vitest"
 * import { Effect, Random, TestClock } from "effect"
 *
 * it.scoped("notes reach the server through a flaky network", () =>
 *   Effect.gen(function*() {
 *     const server = yield* CloudTransport.makeMemoryServer
 *     const faulty = yield* FaultyTransport.wrap(CloudTransport.fromMemoryServer(server), {
 *       seed: 42, // the same seed, the same faults: a failing run replays exactly
 *       probabilities: { dropResponse: 0.2, duplicate: 0.1, serverError: 0.1, timeout: 0.05, delay: 0.5 },
 *       maxDelay: "2 seconds",
 *       timeout: "10 seconds"
 *     })
 *     const store = yield* LocalStore.makeMemory({ clientId: "laptop" })
 *     yield* store.enroll("notes")
 *     const manager = yield* SyncManager.make(yield* SyncConfig.make({ leaseOwner: "w1" })).pipe(
 *       Effect.provideService(LocalStore.LocalStore, store),
 *       Effect.provideService(CloudTransport.CloudTransport, faulty.transport)
 *     )
 *     yield* Effect.forkScoped(manager.run) // the real loop: debounce, polling and backoff on the TestClock
 *     for (let i = 0; i < 20; i++) {
 *       const note = { project: "notes", entity: "doc", entityKey: `n${i}`, op: "upsert", payload: i }
 *       yield* store.appendLocal("cloud", [note])
 *       yield* manager.notifyDirty
 *       yield* TestClock.adjust("3 seconds") // costs no real time
 *     }
 *     yield* faulty.setEnabled(false) // calm: let the manager catch up, past the longest backoff
 *     yield* TestClock.adjust("10 minutes")
 *     assert.strictEqual(yield* store.countPending("cloud"), 0)
 *     assert.strictEqual(server.log().length, 20) // each note exactly once, whatever was retried
 *     assert.isAbove((yield* faulty.counts).dropResponse, 0)
 *   }).pipe(Effect.withRandom(Random.make(7)))) // seeds the manager's backoff jitter too
 * ```
 *
 * A cycle run by hand (`syncNow`) sleeps on the same clock when it meets a delay or a timeout:
 * fork it, `TestClock.adjust`, then join it.
 *
 * As a layer, `layer(options)` wraps the `CloudTransport` provided below it and also provides the
 * `FaultyTransport` tag, through which a test reaches `counts` and `setEnabled`.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import type { PullOptions } from "./CloudTransport.js"
import { CloudTransport, TransportError } from "./CloudTransport.js"

/**
 * A kind of injected fault (see the module's table).
 *
 * @since 0.1.0
 * @category models
 */
export type Fault =
  | "dropRequest"
  | "dropResponse"
  | "duplicate"
  | "serverError"
  | "unauthorized"
  | "forbidden"
  | "timeout"
  | "delay"

/**
 * The faults a request gets at most one of, in the order a draw walks them.
 *
 * @since 0.1.0
 * @category models
 */
export const exclusiveFaults = [
  "dropRequest",
  "dropResponse",
  "duplicate",
  "serverError",
  "unauthorized",
  "forbidden",
  "timeout"
] as const satisfies ReadonlyArray<Fault>

/**
 * Every fault kind.
 *
 * @since 0.1.0
 * @category models
 */
export const allFaults: ReadonlyArray<Fault> = [...exclusiveFaults, "delay"]

/**
 * The two requests of a `CloudTransport`.
 *
 * @since 0.1.0
 * @category models
 */
export type Operation = "push" | "pull"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * The probability per request of each fault, in `[0, 1]`. Each defaults to 0. The exclusive
   * faults (all but `delay`) must add up to at most 1; `delay` is drawn on its own.
   */
  readonly probabilities?: { readonly [K in Fault]?: number }
  /** The longest injected delay. Defaults to 1 second. */
  readonly maxDelay?: Duration.DurationInput
  /**
   * How long a `timeout` fault hangs before failing (a long-poll pull hangs its wait on top, as
   * `HttpCloudTransport` does). Defaults to 30 seconds, `HttpCloudTransport`'s default.
   */
  readonly timeout?: Duration.DurationInput
  /**
   * A switch read on every request (a `Ref<boolean>` is one): faults are injected only while it
   * and `setEnabled` are both on. Defaults to always on.
   */
  readonly enabled?: Effect.Effect<boolean>
  /**
   * A seed for a generator of the wrapper's own, so its faults do not depend on (or disturb) the
   * caller's `Random`. Defaults to none: draws come from the caller's `Random`.
   */
  readonly seed?: string | number
  /** The requests faults are injected into. Defaults to both. */
  readonly operations?: ReadonlyArray<Operation>
  /** How many recent injections `history` keeps. Defaults to 1000. */
  readonly historySize?: number
}

/**
 * How many requests went through the wrapper (`requests`) and how many of each fault it injected.
 *
 * @since 0.1.0
 * @category models
 */
export type Counts = { readonly requests: number } & { readonly [K in Fault]: number }

/**
 * One request that got at least one fault.
 *
 * @since 0.1.0
 * @category models
 */
export interface Injection {
  /** The request's number, from 1, counting every request through the wrapper. */
  readonly request: number
  readonly operation: Operation
  /** When the fault was decided, in `Clock` millis. */
  readonly at: number
  /** `delay` (if any) first, then the exclusive fault (if any). */
  readonly faults: ReadonlyArray<Fault>
  /** The injected delay in millis (0 without a `delay` fault). */
  readonly delayMillis: number
}

/**
 * A fault-injecting transport and its controls.
 *
 * @since 0.1.0
 * @category tags
 */
export class FaultyTransport extends Context.Tag("@autosync/core/FaultyTransport")<FaultyTransport, {
  /** The wrapped transport, to give to a `SyncManager`. */
  readonly transport: CloudTransport["Type"]
  /** What was injected so far. */
  readonly counts: Effect.Effect<Counts>
  /** The most recent injections (at most `historySize`), oldest first. */
  readonly history: Effect.Effect<ReadonlyArray<Injection>>
  /** Turns injection on or off; requests in flight keep the faults they already got. */
  readonly setEnabled: (enabled: boolean) => Effect.Effect<void>
  /** Whether faults are being injected now (`setEnabled` and the `enabled` option). */
  readonly isEnabled: Effect.Effect<boolean>
}>() {}

interface Settings {
  readonly probabilities: { readonly [K in Fault]: number }
  readonly maxDelayMillis: number
  readonly timeout: Duration.Duration
  readonly operations: ReadonlySet<Operation>
  readonly historySize: number
}

const zeroCounts: Counts = {
  requests: 0,
  dropRequest: 0,
  dropResponse: 0,
  duplicate: 0,
  serverError: 0,
  unauthorized: 0,
  forbidden: 0,
  timeout: 0,
  delay: 0
}

const settingsOf = (options: Options): Settings | string => {
  const probabilities = { ...zeroCounts, ...options.probabilities }
  for (const fault of allFaults) {
    const p = probabilities[fault]
    if (!(p >= 0 && p <= 1)) return `probability of ${fault} must be in [0, 1], got ${p}`
  }
  const exclusive = exclusiveFaults.reduce((sum, fault) => sum + probabilities[fault], 0)
  if (exclusive > 1 + 1e-9) return `the probabilities of the exclusive faults add up to ${exclusive}, more than 1`
  const maxDelay = Duration.decodeUnknown(options.maxDelay ?? Duration.seconds(1))
  if (maxDelay._tag === "None" || !Duration.isFinite(maxDelay.value)) return "maxDelay must be a finite duration"
  const timeout = Duration.decodeUnknown(options.timeout ?? Duration.seconds(30))
  if (timeout._tag === "None" || !Duration.isFinite(timeout.value)) return "timeout must be a finite duration"
  const historySize = options.historySize ?? 1000
  if (!Number.isSafeInteger(historySize) || historySize < 0) return "historySize must be an integer >= 0"
  return {
    probabilities,
    maxDelayMillis: Duration.toMillis(maxDelay.value),
    timeout: timeout.value,
    operations: new Set(options.operations ?? ["push", "pull"]),
    historySize
  }
}

/**
 * The exclusive fault a draw `r` in `[0, 1)` selects: the faults' probabilities laid end to end
 * in the order of {@link exclusiveFaults}; past their sum, none. Pure, for table tests.
 *
 * @since 0.1.0
 * @category constructors
 */
export const pick = (
  probabilities: { readonly [K in Fault]?: number },
  r: number
): typeof exclusiveFaults[number] | undefined => {
  let edge = 0
  for (const fault of exclusiveFaults) {
    edge += probabilities[fault] ?? 0
    if (r < edge) return fault
  }
  return undefined
}

const injected = (reason: TransportError["reason"], status: number | undefined, message: string) =>
  new TransportError({
    reason,
    ...(status === undefined ? {} : { status }),
    message: `${message} (injected by FaultyTransport)`
  })

/**
 * Wraps a transport. Fails (as a defect) on nonsense options: a probability outside `[0, 1]`,
 * exclusive probabilities adding up to more than 1, an infinite `maxDelay` or `timeout`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const wrap = (inner: CloudTransport["Type"], options: Options = {}): Effect.Effect<FaultyTransport["Type"]> =>
  Effect.gen(function*() {
    const settings = settingsOf(options)
    if (typeof settings === "string") {
      return yield* Effect.die(new Cause.IllegalArgumentException(`FaultyTransport: ${settings}`))
    }
    const { historySize, maxDelayMillis, operations, probabilities } = settings
    const switched = yield* Ref.make(true)
    const counts = yield* Ref.make(zeroCounts)
    const history = yield* Ref.make<ReadonlyArray<Injection>>([])
    const own = options.seed === undefined ? undefined : Random.make(options.seed)
    const next = own ? own.next : Random.next
    const isEnabled = Effect.flatMap(
      Ref.get(switched),
      (on) => on && options.enabled !== undefined ? options.enabled : Effect.succeed(on)
    )

    const record = (injection: Injection) =>
      Effect.zipRight(
        Ref.update(counts, (c) => {
          const updated: Record<keyof Counts, number> = { ...c }
          for (const fault of injection.faults) updated[fault]++
          return updated
        }),
        Ref.update(history, (h) => historySize === 0 ? h : [...h, injection].slice(-historySize))
      )

    const request = <A>(operation: Operation, send: Effect.Effect<A, TransportError>, wait: Duration.Duration) =>
      Effect.gen(function*() {
        const index = yield* Ref.modify(counts, (c) => [c.requests + 1, { ...c, requests: c.requests + 1 }])
        if (!operations.has(operation) || !(yield* isEnabled)) return yield* send
        const rFault = yield* next
        const rDelay = yield* next
        const rAmount = yield* next
        const delayed = rDelay < probabilities.delay
        const delayMillis = delayed ? Math.round(rAmount * maxDelayMillis) : 0
        const fault = pick(probabilities, rFault)
        const faults: Array<Fault> = delayed ? ["delay"] : []
        if (fault !== undefined) faults.push(fault)
        if (faults.length > 0) {
          yield* record({ request: index, operation, at: yield* Clock.currentTimeMillis, faults, delayMillis })
        }
        if (delayMillis > 0) yield* Effect.sleep(Duration.millis(delayMillis))
        switch (fault) {
          case undefined:
            return yield* send
          case "dropRequest":
            return yield* injected("transport_failed", undefined, `${operation} request lost on the way`)
          case "dropResponse":
            yield* Effect.either(send)
            return yield* injected("transport_failed", undefined, `${operation} response lost on the way back`)
          case "duplicate":
            yield* Effect.either(send)
            return yield* send
          case "serverError":
            return yield* injected("transport_failed", 500, "internal server error")
          case "unauthorized":
            return yield* injected("auth_required", 401, "missing or unknown token")
          case "forbidden":
            return yield* injected("policy_forbidden", 403, "project not allowed for this token")
          case "timeout": {
            const limit = Duration.sum(settings.timeout, wait)
            yield* Effect.sleep(limit)
            return yield* injected(
              "transport_failed",
              undefined,
              `${operation} timed out after ${Duration.format(limit)}`
            )
          }
        }
      })

    return FaultyTransport.of({
      transport: CloudTransport.of({
        push: (batch) => request("push", inner.push(batch), Duration.zero),
        pull: (sinceSeq, limit, pullOptions?: PullOptions) =>
          request(
            "pull",
            inner.pull(sinceSeq, limit, pullOptions),
            Option.getOrElse(Duration.decodeUnknown(pullOptions?.wait), () => Duration.zero)
          ),
        // A storm reads as an outage to the health probe, its end as the server's return: the
        // probe answers only while faults are off, and draws nothing from the `Random`.
        ...(inner.health === undefined ? {} : {
          health: Effect.flatMap(isEnabled, (on) =>
            on
              ? injected("transport_failed", undefined, "health probe: faults are on")
              : inner.health!)
        }),
        ...(inner.identity === undefined ? {} : { identity: inner.identity })
      }),
      counts: Ref.get(counts),
      history: Ref.get(history),
      setEnabled: (enabled) => Ref.set(switched, enabled),
      isEnabled
    })
  })

/**
 * Wraps the `CloudTransport` in the context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<FaultyTransport["Type"], never, CloudTransport> =>
  Effect.flatMap(CloudTransport, (inner) => wrap(inner, options))

/**
 * Replaces the `CloudTransport` provided below it with a faulty one, and provides the
 * `FaultyTransport` controls beside it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<CloudTransport | FaultyTransport, never, CloudTransport> =>
  Layer.effectContext(
    Effect.map(
      make(options),
      (faulty) => Context.make(CloudTransport, faulty.transport).pipe(Context.add(FaultyTransport, faulty))
    )
  )
