import { assert, describe, it } from "@effect/vitest"
import { ackPlan, groupByProject, pageProblem } from "../src/internal/plan.js"

const row = (seq: number, project: string) => ({
  seq,
  targetKey: "cloud",
  project,
  entity: "doc",
  entityKey: `k${seq}`,
  op: "upsert",
  payload: seq,
  source: "local" as const,
  occurredAt: new Date(0)
})

describe("push and pull plans", () => {
  it("groups by project in order of first appearance, rows in journal order", () => {
    const groups = groupByProject([row(1, "a"), row(2, "b"), row(3, "a"), row(4, "c"), row(5, "b")])
    assert.deepStrictEqual(groups.map((g) => g.map((r) => r.seq)), [[1, 3], [2, 5], [4]])
  })

  it("acks exactly the accepted seqs, and nothing on a short, long, missing or malformed result", () => {
    const rows = [row(1, "a"), row(3, "a")]
    assert.deepStrictEqual(ackPlan(rows, [10, 11]), [{ seq: 1, serverSeq: 10 }, { seq: 3, serverSeq: 11 }])
    for (const bad of [undefined, [], [10], [10, 11, 12], [10, 0], [10, 1.5], [10, -3]]) {
      assert.isString(ackPlan(rows, bad))
    }
  })

  it("a page must move past the cursor in increasing seqs", () => {
    assert.isUndefined(pageProblem(5, [6, 9, 10], true))
    assert.isUndefined(pageProblem(5, [], false))
    assert.match(pageProblem(5, [], true)!, /has_more/)
    assert.match(pageProblem(5, [5], false)!, /does not follow/)
    assert.match(pageProblem(5, [7, 6], false)!, /does not follow/)
  })
})
