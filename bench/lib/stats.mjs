// Figures: percentiles, rounding, the table.

export const percentile = (values, p) => {
  if (values.length === 0) return 0
  const sorted = Float64Array.from(values).sort()
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

export const round = (x, digits = 0) => {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

export const rate = (count, ms) => ms > 0 ? (count * 1000) / ms : 0

export const cpuMs = (before, after) =>
  round((after.cpuUserUs + after.cpuSystemUs - before.cpuUserUs - before.cpuSystemUs) / 1000)

export const fmt = (n) => typeof n === "number" ? n.toLocaleString("en-US", { maximumFractionDigits: 1 }) : String(n)

/** A plain-text table: `rows` are arrays of cells, the first one the header. */
export const table = (rows) => {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? "").length)))
  const line = (r) => r.map((c, i) => String(c ?? "").padEnd(widths[i])).join("  ").trimEnd()
  return [line(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)].join("\n")
}
