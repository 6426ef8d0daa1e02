import { Compactor, MutationLog } from "@autosync/server"
import { Fixtures } from "@autosync/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Ref, TestClock } from "effect"

describe("Compactor", () => {
  it("reads the stats only when the rows added since the last read could reach the threshold", () => {
    const cases: ReadonlyArray<[Compactor.Seen | undefined, number, boolean]> = [
      [undefined, 0, true], // never read: read once
      [{ superseded: 0, latestSeq: 500 }, 500, false], // idle
      [{ superseded: 90, latestSeq: 500 }, 509, false], // 99 at most
      [{ superseded: 90, latestSeq: 500 }, 510, true], // 100 possible
      [{ superseded: 100, latestSeq: 500 }, 500, true]
    ]
    for (const [seen, latestSeq, expected] of cases) {
      assert.strictEqual(Compactor.mayReach(seen, latestSeq, 100), expected, JSON.stringify([seen, latestSeq]))
    }
  })

  it.scoped("compacts once the threshold is reached, and an idle log is not scanned again", () =>
    Effect.gen(function*() {
      const base = yield* MutationLog.makeMemory
      const statsReads = yield* Ref.make(0)
      // The real memory log, counting how often its stats (a scan on SQL logs) are read.
      const log = MutationLog.MutationLog.of({
        ...base,
        stats: Effect.zipRight(Ref.update(statsReads, (n) => n + 1), base.stats)
      })
      const write = (from: number, to: number) =>
        Effect.forEach(
          Array.from({ length: to - from + 1 }, (_, i) => from + i),
          (n) => base.append("c1", [Fixtures.entry(n, { entityKey: "k", payload: { n } })])
        )
      yield* write(1, 11) // 11 writes to one key: 10 superseded rows
      yield* Layer.buildWithScope(
        Compactor.layer({ threshold: 10, interval: "1 minute" }).pipe(
          Layer.provide(Layer.succeed(MutationLog.MutationLog, log))
        ),
        yield* Effect.scope
      )
      yield* TestClock.adjust("1 minute") // the first check compacted; the next read the stats again
      assert.deepStrictEqual([(yield* base.stats).rows, yield* Ref.get(statsReads)], [1, 2])
      yield* TestClock.adjust("10 minutes") // idle: the latest seq alone says nothing is due
      assert.strictEqual(yield* Ref.get(statsReads), 2)
      yield* write(12, 20) // 9 more superseded rows at most: still not due
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Ref.get(statsReads), 2)
      yield* write(21, 21) // 10: due
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual([(yield* base.stats).rows, yield* Ref.get(statsReads)], [1, 3])
    }))
})
