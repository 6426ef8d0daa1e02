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

describe("Backoff.schedule", () => {
  const tight = { base: "250 millis", max: "3 seconds" } as const

  it.effect("waits exactly the closed form's delays for any jitter draw, from any persisted count", () =>
    Effect.gen(function*() {
      for (const r of [0, 0.1, 0.25, 0.5, 0.75, 0.999999]) {
        for (const opts of [options, tight]) {
          for (const after of [0, 1, 3, 8, 12, 1022, 1023, 5000]) {
            const delays = yield* Schedule.run(Schedule.delays(Backoff.schedule(opts, after)), 0, [1, 2, 3, 4, 5, 6])
              .pipe(
                Effect.withRandomFixed([r])
              )
            const expected = [1, 2, 3, 4, 5, 6].map((i) => Duration.toMillis(Backoff.delayFor(after + i, opts, r)))
            assert.deepStrictEqual([...delays].map(Duration.toMillis), expected, `r=${r} after=${after}`)
            assert.strictEqual(
              Duration.toMillis(yield* Backoff.delay(after + 1, opts).pipe(Effect.withRandomFixed([r]))),
              expected[0]
            )
          }
        }
      }
    }))

  it.effect("outputs the number of the failure each delay follows", () =>
    Effect.gen(function*() {
      const out = yield* Schedule.run(Backoff.schedule(options, 4), 0, [1, 2, 3]).pipe(Effect.withRandomFixed([0.5]))
      assert.deepStrictEqual([...out], [5, 6, 7])
    }))

  it.effect("a seeded Random draws one value per delay, as Backoff.delay does", () =>
    Effect.gen(function*() {
      const fromSchedule = yield* Schedule.run(Schedule.delays(Backoff.schedule(options)), 0, [1, 2, 3, 4, 5]).pipe(
        Effect.withRandom(Random.make("seed-7"))
      )
      const fromDelay = yield* Effect.forEach([1, 2, 3, 4, 5], (n) => Backoff.delay(n, options)).pipe(
        Effect.withRandom(Random.make("seed-7"))
      )
      assert.deepStrictEqual([...fromSchedule].map(Duration.toMillis), fromDelay.map(Duration.toMillis))
    }))
})
