/**
 * Server-driven flow control as the manager sees it: a `rate_limited` failure (429, or 503 with
 * `Retry-After`) counts as a failure for backoff, shows as its own reason, and the next try is
 * never before the server's `Retry-After` (plus jitter). Exact timelines under `TestClock`.
 */
import { Backoff, CloudTransport, Status } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, TestClock } from "effect"
import { makeReplica, put } from "./fakes.js"

const slowDown = (retryAfterMs: number | undefined, status = 429) =>
  new CloudTransport.TransportError({
    reason: "rate_limited",
    status,
    message: "rate limit exceeded",
    ...(retryAfterMs === undefined ? {} : { retryAfterMs })
  })

const pushes = (log: ReadonlyArray<string>) => log.filter((l) => l.startsWith("push@"))

describe("rate_limited", () => {
  it.scoped("the next push waits Retry-After plus jitter, longer than the backoff; then it recovers", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager, store } = yield* makeReplica({ server, config: { debounce: "500 millis" } })
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("1 millis")
      yield* put(store, "k", 1)
      fake.failPush = 1
      fake.error = slowDown(5000)
      yield* manager.notifyDirty
      yield* TestClock.adjust("600 millis")
      const limited = yield* manager.status
      assert.strictEqual(limited.phase, "push_failed")
      assert.strictEqual(limited.reasonCode, "rate_limited")
      assert.strictEqual(limited.consecutiveFailures, 1)
      // 501 + 5000 * (1 + 0.25 * 0.5); the backoff alone would say 1501
      assert.strictEqual(limited.backoffUntil!.getTime(), 6126)
      assert.strictEqual((yield* store.getSyncState("cloud")).reasonCode, "rate_limited")
      yield* manager.notifyDirty // a wake does not shorten it
      yield* TestClock.adjust("6 seconds")
      assert.deepStrictEqual(pushes(fake.log), ["push@501", "push@6126"])
      assert.strictEqual((yield* manager.status).phase, "healthy")
    }).pipe(Effect.withRandomFixed([0.5])))

  it.scoped("a short Retry-After still counts as a failure for backoff: 1 s, 2 s, 4 s", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager, store } = yield* makeReplica({ server, config: { debounce: "500 millis" } })
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("1 millis")
      yield* put(store, "k", 1)
      fake.failPush = 3
      fake.error = slowDown(100)
      yield* manager.notifyDirty
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(pushes(fake.log), ["push@501", "push@1501", "push@3501", "push@7501"])
    }).pipe(Effect.withRandomFixed([0.5])))

  it.scoped("no further request in the cycle once the server said slow down (other projects wait too)", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager, store } = yield* makeReplica({ server, enroll: ["p", "q"] })
      yield* put(store, "k", 1, "p")
      yield* put(store, "k", 2, "q")
      fake.failPush = 1
      fake.error = slowDown(2000, 503)
      const status = yield* manager.syncNow
      assert.strictEqual(status.reasonCode, "rate_limited")
      assert.strictEqual(fake.log.length, 1) // one push; no second project, no pull
      assert.isAtLeast(status.backoffUntil!.getTime(), 2000)
    }).pipe(Effect.withRandomFixed([0.9])))

  it.scoped("a rate-limited pull: pull_failed, rate_limited, deadline at least Retry-After", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager } = yield* makeReplica({ server })
      fake.failPull = 1
      fake.error = slowDown(30_000, 503)
      const status = yield* manager.syncNow
      assert.strictEqual(status.phase, "pull_failed")
      assert.strictEqual(status.reasonCode, "rate_limited")
      // jitter 0: exactly the server's delay, never less
      assert.strictEqual(status.backoffUntil!.getTime(), 30_000)
    }).pipe(Effect.withRandomFixed([0])))

  it.scoped("the live watcher does not reconnect before Retry-After", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager } = yield* makeReplica({ server, config: { longPollWait: "25 seconds" } })
      yield* manager.syncNow
      fake.failPull = 1
      fake.error = slowDown(20_000, 503)
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("1 millis")
      const first = fake.log.filter((l) => l.startsWith("watch@"))
      assert.isAtLeast(first.length, 1)
      yield* TestClock.adjust("60 seconds")
      const watches = fake.log.filter((l) => l.startsWith("watch@")).map((l) => Number(l.slice(6)))
      // The first long-poll was refused at `watches[0]`; the next is not before 20 s after it.
      assert.isAtLeast(watches.length, 2)
      assert.isAtLeast(watches[1] - watches[0], 20_000)
    }).pipe(Effect.withRandomFixed([0.5])))

  it.effect("Backoff.atLeast: the longer of the backoff and Retry-After plus up to 25 % jitter", () =>
    Effect.gen(function*() {
      const ms = (d: Duration.Duration) => Duration.toMillis(d)
      assert.strictEqual(ms(yield* Backoff.atLeast(Duration.seconds(1), undefined)), 1000)
      assert.strictEqual(ms(yield* Backoff.atLeast(Duration.seconds(1), 0)), 1000)
      assert.strictEqual(ms(yield* Backoff.atLeast(Duration.seconds(1), 4000).pipe(Effect.withRandomFixed([0]))), 4000)
      assert.strictEqual(
        ms(yield* Backoff.atLeast(Duration.seconds(1), 4000).pipe(Effect.withRandomFixed([0.999]))),
        4999
      )
      assert.strictEqual(
        ms(yield* Backoff.atLeast(Duration.seconds(9), 4000).pipe(Effect.withRandomFixed([0.5]))),
        9000
      )
    }))

  it("rate_limited is more specific than transport_failed, less than a refusal", () => {
    assert.strictEqual(Status.mostSpecific("transport_failed", "rate_limited"), "rate_limited")
    assert.strictEqual(Status.mostSpecific("rate_limited", "transport_failed"), "rate_limited")
    assert.strictEqual(Status.mostSpecific("rate_limited", "auth_required"), "auth_required")
    assert.strictEqual(Status.mostSpecific("internal_error", "rate_limited"), "internal_error")
  })
})
