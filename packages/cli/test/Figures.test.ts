import { Figures } from "@autosync/cli"
import { assert, describe, it } from "@effect/vitest"

describe("Figures", () => {
  it("nearest-rank percentiles", () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i)
    assert.strictEqual(Figures.percentile(values, 50), 50)
    assert.strictEqual(Figures.percentile(values, 99), 99)
    assert.strictEqual(Figures.percentile(values, 100), 100)
    assert.strictEqual(Figures.percentile([7], 99), 7)
    assert.isNaN(Figures.percentile([], 50))
  })

  it("a progress bar line", () => {
    assert.strictEqual(Figures.progressBar(5, 10, 1234.4, 10), "[#####-----]  5/10  50%  1,234/s")
    assert.strictEqual(Figures.progressBar(10, 10, 0, 4), "[####] 10/10 100%  0/s")
    assert.strictEqual(Figures.rate(500, 250), 2000)
  })
})
