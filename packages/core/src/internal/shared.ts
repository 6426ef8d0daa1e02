/**
 * What the manager's parts share: its services and configuration, its status, the queues
 * that wake its loop, and the state its fibers (the loop, the watcher, `syncNow`) hand to
 * each other, each in a `Ref`.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import type * as Schedule from "effect/Schedule"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { CloudTransport, TransportError } from "../CloudTransport.js"
import type { LocalStore, LocalStoreError } from "../LocalStore.js"
import type { PullResponse } from "../Mutation.js"
import * as Status from "../Status.js"
import type { SyncConfig } from "../SyncConfig.js"
import * as Watchdog from "./watchdog.js"

export { cycleSeconds, failedTotal, lagSeqs, pendingRows, pulledTotal, pushedTotal } from "../Metrics.js"

/** How often the manager probes the server's health while the server cannot be reached. */
export const probeInterval: Duration.Duration = Duration.seconds(3)

/**
 * A failure of one step, described for the status. `unreachable`: the server did not answer
 * at all (no HTTP status), so its return is worth probing for. `minimumDelay`: the server's
 * `Retry-After` (ms); the next deadline is at least that.
 */
export interface StepFailure {
  readonly reasonCode: Status.ReasonCode
  readonly message: string
  readonly unreachable?: boolean
  readonly minimumDelay?: number
}

/** A failed cycle: the step that failed and why. */
export type CycleFailure = { readonly step: "push" | "pull" | "cycle" } & StepFailure

/** The status fields a transport or store error sets. */
export const describeFailure = (error: TransportError | LocalStoreError): StepFailure =>
  error._tag === "LocalStoreError"
    ? { reasonCode: "internal_error", message: `local store: ${error.message}` }
    : error.reason === "identity_conflict"
    ? { reasonCode: error.reason, message: `${error.message}: ${Status.identityConflictHint}` }
    : error.reason === "rate_limited"
    ? { reasonCode: error.reason, message: error.message, minimumDelay: error.retryAfterMs ?? 0 }
    : {
      reasonCode: error.reason,
      message: error.message,
      unreachable: error.reason === "transport_failed" && error.status === undefined
    }

/**
 * What the live-sync watcher tells the cycle. `newsPending`: the server has writes we have not
 * pulled (or the last pull failed), so the next cycle pulls; `lastPullAt`: when a cycle last
 * pulled; `prefetched`: the page the watcher brought back, applied by the next cycle instead of
 * asking again when it starts at the cycle's cursor.
 */
export interface RemoteState {
  readonly newsPending: boolean
  readonly lastPullAt: number
  readonly prefetched: Option.Option<{ readonly sinceSeq: number; readonly page: PullResponse }>
}

/**
 * The backoff of the current failure streak (see `recovery.ts`): its `Backoff.schedule`, the
 * schedule's state after the steps taken so far, and the failure count it has reached.
 */
export interface Streak {
  readonly schedule: Schedule.Schedule<number>
  readonly state: unknown
  readonly failures: number
}

/** The manager's services, configuration and shared state. */
export interface Shared {
  readonly store: LocalStore["Type"]
  readonly transport: CloudTransport["Type"]
  readonly config: SyncConfig
  readonly status: SubscriptionRef.SubscriptionRef<Status.Status>
  /** Local writes: `notifyDirty`, the `DirtySignal`, a resume, writes made during a push. */
  readonly wake: Queue.Queue<void>
  /** The watcher brought a page. */
  readonly remoteNews: Queue.Queue<void>
  /** The server answers again after an outage (the watcher reconnected). */
  readonly serverBack: Queue.Queue<void>
  /** `Some(project)` while paused by `stopForUpgrade`. */
  readonly disabled: Ref.Ref<Option.Option<string>>
  readonly remote: Ref.Ref<RemoteState>
  /**
   * Armed by a failure to reach the server: the backoff wait then probes its health. Not
   * re-armed by a failure of a cycle the probe itself woke (the server answers its health but
   * not sync): that retry waits out its backoff, so a half-up server sees at most one extra
   * cycle per backoff period.
   */
  readonly probeArmed: Ref.Ref<boolean>
  /** `Some` while failing: the backoff schedule in progress. */
  readonly streak: Ref.Ref<Option.Option<Streak>>
  /** One cycle at a time: the loop's, `syncNow`'s, and the lease release. */
  readonly cycleLock: Effect.Semaphore
  /** The stall watchdog's runs without progress, fed by the cycle and the watcher. */
  readonly watchdog: Ref.Ref<Watchdog.State>
}

/** The shared state of a new manager. */
export const makeShared = (
  store: LocalStore["Type"],
  transport: CloudTransport["Type"],
  config: SyncConfig
): Effect.Effect<Shared> =>
  Effect.all({
    status: SubscriptionRef.make<Status.Status>(Status.initial),
    wake: Queue.sliding<void>(1),
    remoteNews: Queue.sliding<void>(1),
    serverBack: Queue.sliding<void>(1),
    disabled: Ref.make(Option.none<string>()),
    remote: Ref.make<RemoteState>({
      newsPending: true,
      lastPullAt: Number.NEGATIVE_INFINITY,
      prefetched: Option.none()
    }),
    probeArmed: Ref.make(false),
    streak: Ref.make(Option.none<Streak>()),
    cycleLock: Effect.makeSemaphore(1),
    watchdog: Ref.make(Watchdog.initial)
  }).pipe(Effect.map((state) => ({ store, transport, config, ...state })))

/** Annotates the manager's logs. */
export const logged = (config: SyncConfig) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.annotateLogs(effect, {
    package: "@autosync/core",
    module: "SyncManager",
    targetKey: config.targetKey,
    leaseOwner: config.leaseOwner
  })

/** The current time as a `Date`, from Effect's `Clock`. */
export const now = Effect.map(Effect.clockWith((clock) => clock.currentTimeMillis), (ms) => new Date(ms))
