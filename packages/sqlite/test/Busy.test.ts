/**
 * Opening retries what SQLite's busy handler does not wait for (see `internal/busy.ts`): a
 * `SQLITE_BUSY`/`SQLITE_LOCKED` failure is tried again until the busy timeout, under `TestClock`.
 */
import { LocalStore } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Ref, TestClock } from "effect"
import { retryWhileBusy } from "../src/internal/busy.js"

const failure = (code: string) =>
  new LocalStore.LocalStoreError({
    reason: "storage",
    message: `locked (${code})`,
    cause: { code, message: "database is locked" }
  })

/** Fails with `code` the first `times` attempts, then succeeds; counts the attempts. */
const flaky = (code: string, times: number) =>
  Effect.map(Ref.make(0), (attempts) => ({
    attempts,
    effect: Effect.flatMap(
      Ref.updateAndGet(attempts, (n) => n + 1),
      (n) => n <= times ? Effect.fail(failure(code)) : Effect.succeed("opened")
    )
  }))

describe("retryWhileBusy", () => {
  it.effect("a busy or locked failure is retried until it succeeds within the busy timeout", () =>
    Effect.gen(function*() {
      for (const code of ["SQLITE_BUSY", "SQLITE_BUSY_SNAPSHOT", "SQLITE_LOCKED"]) {
        const { attempts, effect } = yield* flaky(code, 5)
        const fiber = yield* Effect.fork(retryWhileBusy(effect, "5 seconds"))
        yield* TestClock.adjust("5 seconds")
        assert.strictEqual(yield* Fiber.join(fiber), "opened", code)
        assert.strictEqual(yield* Ref.get(attempts), 6, code)
      }
    }))

  it.effect("it gives up with the last failure once the busy timeout has passed", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* flaky("SQLITE_BUSY", Number.MAX_SAFE_INTEGER)
      const fiber = yield* Effect.fork(Effect.flip(retryWhileBusy(effect, "1 second")))
      yield* TestClock.adjust("10 seconds")
      const error = yield* Fiber.join(fiber)
      assert.include(error.message, "SQLITE_BUSY")
      const tried = yield* Ref.get(attempts)
      // Spaced at most 100 ms (jittered up to 125 ms) within the second: several tries, then no more.
      assert.isAbove(tried, 5)
      assert.isBelow(tried, 40)
    }))

  it.effect("any other failure is not retried", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* flaky("SQLITE_CORRUPT", 1)
      const error = yield* Effect.flip(retryWhileBusy(effect, "5 seconds"))
      assert.include(error.message, "SQLITE_CORRUPT")
      assert.strictEqual(yield* Ref.get(attempts), 1)
    }))
})
