import { Merge } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"

const facts = (overrides: Partial<Merge.Facts> = {}): Merge.Facts => ({
  lastPulledSeq: 0,
  problem: undefined,
  hasUnackedWrite: false,
  ownAckedSeq: 0,
  ...overrides
})

describe("Merge.decide", () => {
  // [name, seq, facts, expected]: each row is one step of the rule, and the ones after it lose.
  const table: ReadonlyArray<readonly [string, number, Merge.Facts, ReturnType<typeof Merge.decide>]> = [
    ["a fresh key past the cursor is applied", 5, facts(), "applied"],
    ["a seq at the cursor is a duplicate", 5, facts({ lastPulledSeq: 5 }), "duplicate"],
    ["a seq below the cursor is a duplicate", 3, facts({ lastPulledSeq: 5 }), "duplicate"],
    [
      "a duplicate wins over everything after it",
      3,
      facts({
        lastPulledSeq: 5,
        problem: "bad",
        hasUnackedWrite: true,
        ownAckedSeq: 9
      }),
      "duplicate"
    ],
    [
      "a mutation that cannot be applied is a dead letter",
      6,
      facts({ lastPulledSeq: 5, problem: "bad" }),
      "dead_letter"
    ],
    [
      "a dead letter is not kept aside, even for a key with an un-acked write",
      6,
      facts({
        problem: "bad",
        hasUnackedWrite: true
      }),
      "dead_letter"
    ],
    ["a key with an un-acked local write keeps the mutation aside", 6, facts({ hasUnackedWrite: true }), "kept_aside"],
    [
      "kept aside wins over superseded: the ack decides later",
      6,
      facts({ hasUnackedWrite: true, ownAckedSeq: 9 }),
      "kept_aside"
    ],
    ["older than our own acked write of the key: superseded", 6, facts({ ownAckedSeq: 9 }), "superseded"],
    ["newer than our own acked write of the key: applied", 10, facts({ ownAckedSeq: 9 }), "applied"],
    ["our own acked write at the same seq does not supersede it", 9, facts({ ownAckedSeq: 9 }), "applied"]
  ]
  for (const [name, seq, given, expected] of table) {
    it(name, () => assert.strictEqual(Merge.decide({ seq }, given), expected))
  }
})

describe("Merge.decidePage", () => {
  it("moves the cursor through the page: a seq repeated in the page is a duplicate; facts only past the cursor", () => {
    const asked: Array<number> = []
    const page = [{ seq: 2 }, { seq: 4 }, { seq: 4 }, { seq: 3 }, { seq: 6 }, { seq: 7 }, { seq: 8 }]
    const { cursor, results } = Merge.decidePage(page, 2, (m) => {
      asked.push(m.seq)
      return {
        problem: m.seq === 6 ? "bad" : undefined,
        hasUnackedWrite: m.seq === 7,
        ownAckedSeq: m.seq === 8 ? 9 : 0
      }
    })
    assert.deepStrictEqual(results, [
      "duplicate",
      "applied",
      "duplicate",
      "duplicate",
      "dead_letter",
      "kept_aside",
      "superseded"
    ])
    assert.strictEqual(cursor, 8)
    assert.deepStrictEqual(asked, [4, 6, 7, 8])
  })

  it("an empty or all-duplicate page leaves the cursor where it was", () => {
    assert.deepStrictEqual(Merge.decidePage([], 5, () => facts()), { results: [], cursor: 5 })
    assert.deepStrictEqual(Merge.decidePage([{ seq: 1 }, { seq: 5 }], 5, () => facts()), {
      results: ["duplicate", "duplicate"],
      cursor: 5
    })
  })
})

describe("Merge.settle", () => {
  const held = [{ seq: 7 }, { seq: 3 }, { seq: 5 }, { seq: 4 }]
  // [name, ackedSeq, hasUnackedWrite, keep, discard, apply]
  const table: ReadonlyArray<
    readonly [string, number, boolean, ReadonlyArray<number>, ReadonlyArray<number>, ReadonlyArray<number>]
  > = [
    ["a key with an un-acked write left keeps everything aside", 9, true, [3, 4, 5, 7], [], []],
    ["acked above all of them: all discarded (our write came last)", 9, false, [], [3, 4, 5, 7], []],
    ["acked below all of them: all applied in seq order", 2, false, [], [], [3, 4, 5, 7]],
    ["acked in between: up to it discarded, the later ones applied in seq order", 4, false, [], [3, 4], [5, 7]],
    ["no server seq known (0): all applied", 0, false, [], [], [3, 4, 5, 7]]
  ]
  for (const [name, ackedSeq, hasUnackedWrite, keep, discard, apply] of table) {
    it(name, () => {
      const settled = Merge.settle(held, { ackedSeq, hasUnackedWrite })
      assert.deepStrictEqual(
        [settled.keep, settled.discard, settled.apply].map((ms) => ms.map((m) => m.seq)),
        [keep, discard, apply]
      )
    })
  }

  it("nothing kept aside: nothing settles", () => {
    assert.deepStrictEqual(Merge.settle([], { ackedSeq: 3, hasUnackedWrite: false }), {
      keep: [],
      discard: [],
      apply: []
    })
  })
})

describe("Merge.ackedSeqByKey", () => {
  it("per key, the highest server seq of the rows acked at once; 0 when none is known", () => {
    const k = (entityKey: string, project = "p") => ({ project, entity: "doc", entityKey })
    const byKey = Merge.ackedSeqByKey([
      { key: k("a"), serverSeq: 10 },
      { key: k("a"), serverSeq: 12 },
      { key: k("a"), serverSeq: 11 },
      { key: k("b"), serverSeq: undefined },
      { key: k("a", "q"), serverSeq: 3 }
    ])
    assert.deepStrictEqual(
      [...byKey.entries()].map(([key, v]) => [key, v.serverSeq]),
      [[Merge.keyOf(k("a")), 12], [Merge.keyOf(k("b")), 0], [Merge.keyOf(k("a", "q")), 3]]
    )
  })

  it("keys differ by project, entity and entity key, whatever characters they hold", () => {
    const keys = [
      { project: "a", entity: "b", entityKey: "c" },
      { project: "a b", entity: "", entityKey: "c" },
      { project: "a", entity: "b c", entityKey: "" },
      { project: "a", entity: "bc", entityKey: "" }
    ]
    assert.strictEqual(new Set(keys.map(Merge.keyOf)).size, keys.length)
  })
})

describe("Merge.pageProblem and cursorAfter", () => {
  // [seqs, throughSeq, problem (a substring) or undefined]
  const table: ReadonlyArray<readonly [ReadonlyArray<number>, number | undefined, string | undefined]> = [
    [[1, 2, 3], undefined, undefined],
    [[], 0, undefined],
    [[1], 7, undefined],
    [[0], undefined, "positive integer seq, got 0"],
    [[1, -2], undefined, "positive integer seq, got -2"],
    [[1.5], undefined, "positive integer seq, got 1.5"],
    [[Number.NaN], undefined, "positive integer seq, got NaN"],
    [[2 ** 60], undefined, "positive integer seq"],
    [[1], -1, "throughSeq must be an integer >= 0, got -1"],
    [[1], 1.5, "throughSeq must be an integer >= 0, got 1.5"],
    [[], Number.NaN, "throughSeq must be an integer >= 0, got NaN"],
    [[0], -1, "positive integer seq"]
  ]
  for (const [seqs, through, problem] of table) {
    it(`seqs ${JSON.stringify(seqs)}, throughSeq ${String(through)}`, () => {
      const found = Merge.pageProblem(seqs.map((seq) => ({ seq })), through)
      if (problem === undefined) assert.isUndefined(found)
      else assert.include(found, problem)
    })
  }

  it("throughSeq moves the cursor on, never back", () => {
    assert.strictEqual(Merge.cursorAfter(5, undefined), 5)
    assert.strictEqual(Merge.cursorAfter(5, 9), 9)
    assert.strictEqual(Merge.cursorAfter(9, 5), 9)
  })
})
