/**
 * Lease fencing: every batch pushed and every page pulled first makes sure the lease is still
 * ours. The lease is ours until `heldUntil`; nobody can take it before then, so within a cycle
 * it is renewed only once less than half of it is left (each renewal is a durable write).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type { LocalStoreError } from "../LocalStore.js"
import { logged, now, type Shared } from "./shared.js"

/** Another worker took the lease mid-cycle: the cycle ends quietly, it is that worker's turn. */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", {}) {}

/** The lease steps of one manager. */
export interface Lease {
  /** Takes or renews the lease at `at`; `false` when another worker holds it. */
  readonly acquire: (at: Date) => Effect.Effect<boolean, LocalStoreError>
  /** `true` when the lease is ours (renewing it when less than half is left). */
  readonly hold: (at: Date) => Effect.Effect<boolean, LocalStoreError>
  /** Fails with `LeaseLost` when the lease is no longer ours. */
  readonly ensure: Effect.Effect<void, LocalStoreError | LeaseLost>
  /** Gives the lease up (logged, never failing). */
  readonly release: Effect.Effect<void>
}

/** The lease steps over the shared store. */
export const makeLease = ({ config, store }: Shared): Effect.Effect<Lease> =>
  Effect.map(Ref.make(0), (heldUntil) => {
    const { leaseOwner, targetKey } = config
    const ttl = Duration.toMillis(config.leaseInterval)
    const acquire = (at: Date) =>
      Effect.tap(
        store.acquireLease(targetKey, leaseOwner, config.leaseInterval, at),
        (held) => Ref.set(heldUntil, held ? at.getTime() + ttl : 0)
      )
    const fresh = (at: Date) => Effect.map(Ref.get(heldUntil), (until) => until - at.getTime() > ttl / 2)
    const hold = (at: Date) => Effect.flatMap(fresh(at), (ok) => ok ? Effect.succeed(true) : acquire(at))
    return {
      acquire,
      hold,
      ensure: Effect.flatMap(now, hold).pipe(
        Effect.flatMap((held) => held ? Effect.void : Effect.fail(new LeaseLost()))
      ),
      release: Effect.zipRight(Ref.set(heldUntil, 0), store.releaseLease(targetKey, leaseOwner)).pipe(
        Effect.catchAll((e) => Effect.logWarning(`could not release the lease: ${e.message}`)),
        logged(config)
      )
    }
  })
