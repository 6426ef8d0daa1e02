import { Backoff } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Random, Schedule } from "effect"

const options = { base: "1 second", max: "5 minutes" } as const
const seconds = (d: Duration.Duration) => Duration.toMillis(d) / 1000

describe("Backoff", () => {
  it.effect("exact delays for failures 1..12 without jitter (Random fixed at the middle)", () =>
    Effect.gen(function*() {
      const delays: Array<number> = []
      for (let n = 1; n <= 12; n++) delays.push(seconds(yield* Backoff.delay(n, options)))
      assert.deepStrictEqual(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300])
    }).pipe(Effect.withRandomFixed([0.5])))

  it("jitter stays within ±25 %, floored at base/2 and capped at max", () => {
    const low = Array.from({ length: 12 }, (_, i) => seconds(Backoff.delayFor(i + 1, options, 0)))
    const high = Array.from({ length: 12 }, (_, i) => seconds(Backoff.delayFor(i + 1, options, 0.999999)))
    assert.deepStrictEqual(low, [0.75, 1.5, 3, 6, 12, 24, 48, 96, 192, 225, 225, 225])
    assert.deepStrictEqual(high, [1.25, 2.5, 5, 10, 20, 40, 80, 160, 300, 300, 300, 300])
    // the floor: a base of 1 s with a 40 % jitter draw below would give 0.75 s; base/2 guards tighter bases
    const tight = { base: "1 second", max: "1 second" } as const
    assert.strictEqual(seconds(Backoff.delayFor(1, tight, 0)), 0.75)
    assert.strictEqual(seconds(Backoff.delayFor(1, { base: "2 seconds", max: "2 seconds" }, 0)), 1.5)
  })

  it.effect("a seeded Random gives the same delays every time, each within bounds", () =>
    Effect.gen(function*() {
      const draw = Effect.suspend(() =>
        Effect.forEach(Array.from({ length: 12 }, (_, i) => i + 1), (n) => Backoff.delay(n, options)).pipe(
          Effect.withRandom(Random.make("seed-42"))
        )
      )
      const first = (yield* draw).map(seconds)
      const second = (yield* draw).map(seconds)
      assert.deepStrictEqual(first, second)
      first.forEach((d, i) => {
        const raw = Math.min(2 ** i, 300)
        assert.isAtLeast(d, Math.max(0.5, raw * 0.75) - 0.001)
        assert.isAtMost(d, Math.min(300, raw * 1.25) + 0.001)
      })
    }))

  it("very large failure counts saturate at max without overflow; counts below 1 act as 1", () => {
    for (const n of [1024, 1025, 10_000, Number.MAX_SAFE_INTEGER, Infinity]) {
      assert.strictEqual(seconds(Backoff.delayFor(n, options, 0.5)), 300)
    }
    assert.strictEqual(seconds(Backoff.delayFor(0, options, 0.5)), 1)
    assert.strictEqual(seconds(Backoff.delayFor(-5, options, 0.5)), 1)
  })

  it.effect("the schedule waits the same delays", () =>
    Effect.gen(function*() {
      const delays = yield* Schedule.delays(Backoff.schedule(options)).pipe(
        (s) => Schedule.run(s, 0, [1, 2, 3, 4, 5]),
        Effect.withRandomFixed([0.5])
      )
      assert.deepStrictEqual([...delays].map(seconds), [1, 2, 4, 8, 16])
    }))
})
