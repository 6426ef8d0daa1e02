/**
 * Wakes the sync managers of this process when the application writes: the journal write API
 * (`Documents` in `@autosync/sqlite`) calls `notify` after each commit, and every running
 * manager that shares this service is woken (each subscriber holds at most one pending wake,
 * so `notify` never blocks and a burst of writes coalesces).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"

/**
 * @since 0.1.0
 * @category tags
 */
export class DirtySignal extends Context.Tag("@autosync/core/DirtySignal")<DirtySignal, {
  /** Signals that local data changed. Never blocks. */
  readonly notify: Effect.Effect<void>
  /** A subscription holding at most one pending wake, for the life of the scope. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<void>, never, Scope.Scope>
}>() {}

/**
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<DirtySignal["Type"]> = Effect.map(
  PubSub.sliding<void>(1),
  (pubsub) =>
    DirtySignal.of({
      notify: Effect.asVoid(PubSub.publish(pubsub, undefined)),
      subscribe: PubSub.subscribe(pubsub)
    })
)

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<DirtySignal> = Layer.effect(DirtySignal, make)
