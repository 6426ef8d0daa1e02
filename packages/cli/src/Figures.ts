/**
 * Summaries the demo and the benchmarks print: percentiles, rates and a progress bar.
 *
 * @since 0.1.0
 */

/**
 * The `p`-th percentile (0..100) of `values`, nearest-rank; `NaN` for no values.
 *
 * @since 0.1.0
 * @category figures
 */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)))
  return sorted[rank - 1]
}

/**
 * Items per second, or 0 when no time passed.
 *
 * @since 0.1.0
 * @category figures
 */
export const rate = (count: number, millis: number): number => millis > 0 ? (count * 1000) / millis : 0

/**
 * One line of a progress bar: `[#####-----] 512/1000  51%  2,345/s`.
 *
 * @since 0.1.0
 * @category figures
 */
export const progressBar = (done: number, total: number, perSecond: number, width = 30): string => {
  const fraction = total > 0 ? Math.min(1, done / total) : 1
  const filled = Math.round(fraction * width)
  const bar = "#".repeat(filled) + "-".repeat(width - filled)
  const pct = `${Math.floor(fraction * 100)}%`.padStart(4)
  return `[${bar}] ${String(done).padStart(String(total).length)}/${total} ${pct}  ${formatRate(perSecond)}`
}

/**
 * A rate with thousands separators: `12,345/s`.
 *
 * @since 0.1.0
 * @category figures
 */
export const formatRate = (perSecond: number): string => `${Math.round(perSecond).toLocaleString("en-US")}/s`
