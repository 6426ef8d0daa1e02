import { Admission } from "@autosync/server"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Schedule, Scope, TestClock } from "effect"
import { entry, failureOf, layerMemoryServer, TestServer } from "./helpers.js"

const admitted = { _tag: "Admitted" } as const

describe("Admission", () => {
  it.effect("admits up to maxInflight at once, then 503 with Retry-After until one is released", () =>
    Effect.gen(function*() {
      const admission = yield* Admission.make({ maxInflight: 2 })
      assert.deepStrictEqual(yield* admission.admit("t"), admitted)
      assert.deepStrictEqual(yield* admission.admit("u"), admitted)
      const third = yield* admission.admit("v")
      assert.deepInclude(third, { _tag: "Rejected", reason: "overloaded", status: 503, retryAfter: 1 })
      assert.strictEqual(yield* admission.inflight, 2)
      yield* admission.release
      assert.deepStrictEqual(yield* admission.admit("v"), admitted)
    }))

  it.effect("no bound and no rate by default", () =>
    Effect.gen(function*() {
      const admission = yield* Admission.make()
      for (let i = 0; i < 1000; i++) assert.deepStrictEqual(yield* admission.admit("t"), admitted)
      assert.strictEqual(yield* admission.inflight, 1000)
    }))

  it.effect("a held long-poll does not count while held, and counts again once it answers", () =>
    Effect.gen(function*() {
      const admission = yield* Admission.make({ maxInflight: 1 })
      assert.deepStrictEqual(yield* admission.admit("t"), admitted)
      const news = yield* Deferred.make<void>()
      const holding = yield* Deferred.make<void>()
      // The middleware marks the request's fiber as holding a slot; `held` frees it during the wait.
      const pull = yield* admission.held(Effect.zipRight(Deferred.succeed(holding, undefined), Deferred.await(news)))
        .pipe(
          Effect.locally(Admission.holdsSlot, true),
          Effect.fork
        )
      yield* Deferred.await(holding)
      assert.strictEqual(yield* admission.inflight, 0)
      // Another request gets the slot while the pull is held.
      assert.deepStrictEqual(yield* admission.admit("u"), admitted)
      assert.deepInclude(yield* admission.admit("w"), { status: 503 })
      // The held pull wakes and takes its slot back (over the bound: it was admitted already).
      yield* Deferred.succeed(news, undefined)
      yield* Fiber.join(pull)
      assert.strictEqual(yield* admission.inflight, 2)
      yield* admission.release
      yield* admission.release
      assert.strictEqual(yield* admission.inflight, 0)
    }))

  it.effect("held does nothing for a fiber without a slot", () =>
    Effect.gen(function*() {
      const admission = yield* Admission.make({ maxInflight: 1 })
      assert.deepStrictEqual(yield* admission.admit("t"), admitted)
      assert.strictEqual(yield* admission.held(admission.inflight), 1)
    }))

  it.effect("rate per token: a burst of N, then 429 with the seconds until the bucket refills", () =>
    Effect.gen(function*() {
      const admission = yield* Admission.make({ rateLimit: 3 })
      const admitAndRelease = (token: string) => Effect.tap(admission.admit(token), () => admission.release)
      for (let i = 0; i < 3; i++) assert.deepStrictEqual(yield* admitAndRelease("a"), admitted)
      const fourth = yield* admitAndRelease("a")
      assert.deepInclude(fourth, { _tag: "Rejected", reason: "rate", status: 429, retryAfter: 1 })
      // Another token has its own bucket.
      assert.deepStrictEqual(yield* admitAndRelease("b"), admitted)
      // A rejected request took no slot.
      assert.strictEqual(yield* admission.inflight, 0)
      // One request refills in 1/3 s.
      yield* TestClock.adjust("333 millis")
      assert.deepInclude(yield* admitAndRelease("a"), { status: 429 })
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* admitAndRelease("a"), admitted)
      assert.deepInclude(yield* admitAndRelease("a"), { status: 429 })
      // After a second of quiet, a full burst again (never more).
      yield* TestClock.adjust("10 seconds")
      for (let i = 0; i < 3; i++) assert.deepStrictEqual(yield* admitAndRelease("a"), admitted)
      assert.deepInclude(yield* admitAndRelease("a"), { status: 429 })
    }))

  it.effect("a slow rate says how many whole seconds to wait", () =>
    Effect.gen(function*() {
      const admission = yield* Admission.make({ rateLimit: 0.2 }) // one request per 5 s
      assert.deepStrictEqual(yield* admission.admit("a"), admitted)
      assert.deepInclude(yield* admission.admit("a"), { status: 429, retryAfter: 5 })
      yield* TestClock.adjust("2500 millis")
      assert.deepInclude(yield* admission.admit("a"), { status: 429, retryAfter: 3 })
      yield* TestClock.adjust("2500 millis")
      assert.deepStrictEqual(yield* admission.admit("a"), admitted)
    }))

  it.effect("requests without a token are not rate-limited here (the token check answers 401)", () =>
    Effect.gen(function*() {
      const admission = yield* Admission.make({ rateLimit: 1 })
      for (let i = 0; i < 5; i++) assert.deepStrictEqual(yield* admission.admit(undefined), admitted)
    }))

  it.effect("overloaded before rate: a 503 does not spend the token's budget", () =>
    Effect.gen(function*() {
      const admission = yield* Admission.make({ maxInflight: 1, rateLimit: 1 })
      assert.deepStrictEqual(yield* admission.admit("a"), admitted)
      assert.deepInclude(yield* admission.admit("b"), { status: 503 })
      yield* admission.release
      assert.deepStrictEqual(yield* admission.admit("b"), admitted)
    }))

  it.effect("once closing, every request gets 503 with Retry-After", () =>
    Effect.gen(function*() {
      const admission = yield* Admission.make({})
      assert.deepStrictEqual(yield* admission.admit("a"), admitted)
      yield* admission.close
      assert.isTrue(yield* admission.closing)
      assert.deepInclude(yield* admission.admit("a"), {
        _tag: "Rejected",
        reason: "closing",
        status: 503,
        retryAfter: Admission.unavailableRetryAfter
      })
    }))

  it.effect("closing the layer (the server shutting down) closes the policy", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const admission = Context.get(yield* Layer.buildWithScope(Admission.layer({}), scope), Admission.Admission)
      assert.isFalse(yield* admission.closing)
      yield* Scope.close(scope, Exit.void)
      assert.deepInclude(yield* admission.admit("a"), { reason: "closing", status: 503 })
    }))

  it("takeToken: refill, cap and waits (pure)", () => {
    assert.deepStrictEqual(Admission.takeToken(undefined, 10, 0), { bucket: { tokens: 9, at: 0 } })
    assert.deepStrictEqual(Admission.takeToken({ tokens: 0, at: 0 }, 10, 100), { bucket: { tokens: 0, at: 100 } })
    assert.deepStrictEqual(Admission.takeToken({ tokens: 0, at: 0 }, 10, 50), {
      bucket: { tokens: 0.5, at: 50 },
      retryAfter: 1
    })
    assert.deepStrictEqual(Admission.takeToken({ tokens: 9, at: 0 }, 10, 60_000), { bucket: { tokens: 9, at: 60_000 } })
    // A rate under 1/s still allows one request.
    assert.deepStrictEqual(Admission.takeToken(undefined, 0.5, 0), { bucket: { tokens: 0, at: 0 } })
    assert.deepStrictEqual(Admission.takeToken({ tokens: 0, at: 0 }, 0.5, 0).retryAfter, 2)
  })
})

describe("Admission in front of the real server", () => {
  const get = (url: string, token: string) =>
    Effect.promise(async () => {
      const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
      return { status: response.status, retryAfter: response.headers.get("retry-after"), body: await response.text() }
    })

  it.live("over the rate: 429 with Retry-After and a JSON message, before the body is read", () =>
    Effect.gen(function*() {
      const server = yield* TestServer
      const token = yield* server.token(["p1"])
      assert.strictEqual((yield* get(`${server.url}/v1/pull?since_seq=0`, token)).status, 200)
      const refused = yield* get(`${server.url}/v1/pull?since_seq=0`, token)
      assert.strictEqual(refused.status, 429)
      assert.strictEqual(refused.retryAfter, "1")
      assert.deepStrictEqual(JSON.parse(refused.body), {
        _tag: "TooManyRequests",
        message: "rate limit of 1 requests per second for this token exceeded"
      })
      // A body that is not even JSON is refused by the rate limit, not read (400).
      const push = yield* Effect.promise(() =>
        fetch(`${server.url}/v1/push`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: "{not json"
        })
      )
      assert.strictEqual(push.status, 429)
      // Another token has its own budget; health is not limited.
      assert.strictEqual((yield* get(`${server.url}/v1/pull?since_seq=0`, yield* server.token(["p1"]))).status, 200)
      for (let i = 0; i < 3; i++) assert.strictEqual((yield* get(`${server.url}/v1/health`, token)).status, 200)
      // The HTTP transport reports it as rate_limited with the delay.
      const transport = yield* server.transport(["p1"])
      yield* transport.pull(0, 10)
      const error = yield* failureOf(transport.pull(0, 10))
      assert.strictEqual(error.reason, "rate_limited")
      assert.strictEqual(error.status, 429)
      assert.strictEqual(error.retryAfterMs, 1000)
    }).pipe(Effect.provide(layerMemoryServer({ rateLimit: 1 }))))

  it.live("a held long-poll does not take the only in-flight slot: a push gets through and wakes it", () =>
    Effect.gen(function*() {
      const server = yield* TestServer
      const puller = yield* server.transport(["p1"])
      const pusher = yield* server.transport(["p1"])
      const held = yield* Effect.fork(puller.pull(0, 10, { wait: "30 seconds" }))
      // Until the pull is held, a push may meet it in flight (503): retry for up to ~20 s (were the
      // held pull counted, every try would get 503 until it ended after 30 s).
      const pushed = yield* pusher.push({ clientId: "c1", mutations: [entry(1, { project: "p1" })] }).pipe(
        Effect.retry({
          while: (e) => e.reason === "rate_limited",
          schedule: Schedule.intersect(Schedule.spaced("50 millis"), Schedule.recurs(400))
        })
      )
      assert.deepStrictEqual(pushed.acceptedSeqs, [1])
      const page = yield* Fiber.join(held)
      assert.deepStrictEqual(page.mutations.map((m) => m.seq), [1])
    }).pipe(Effect.provide(layerMemoryServer({ maxInflight: 1 }))))
})
