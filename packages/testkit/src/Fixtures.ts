/**
 * Small fixtures the suites use, for your own tests too: a mutation entry with defaults, and the
 * typed failure of an effect that must fail.
 *
 * @since 0.1.0
 */
import type { Mutation } from "@autosync/core"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

/**
 * A mutation entry with defaults.
 *
 * @since 0.1.0
 * @category constructors
 */
export const entry = (
  clientSeq: number,
  overrides: Partial<Mutation.MutationEntry> = {}
): Mutation.MutationEntry => ({
  clientSeq,
  project: "p1",
  entity: "document",
  entityKey: `k${clientSeq}`,
  op: "upsert",
  payload: { n: clientSeq },
  ...overrides
})

/**
 * The typed failure of an effect that must fail (a defect or success fails the test).
 *
 * @since 0.1.0
 * @category combinators
 */
export const failureOf = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<E> =>
  Effect.flatMap(Effect.exit(effect), (exit) =>
    Exit.isFailure(exit) && exit.cause._tag === "Fail"
      ? Effect.succeed(exit.cause.error)
      : Effect.dieMessage(`expected a typed failure, got ${String(exit)}`))
