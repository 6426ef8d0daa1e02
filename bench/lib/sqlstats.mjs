// Statement-level figures for a process's SQLite work: wraps better-sqlite3's Statement methods
// (the copy @effect/sql-sqlite-node uses) to count calls and time per SQL text. The profiler
// cannot attribute time inside Effect fibers to their callers; this can.
import Database from "better-sqlite3"

const stats = new Map()

const normalise = (sql) => sql.replace(/\s+/g, " ").trim().slice(0, 140)

export const install = () => {
  const db = new Database(":memory:")
  const proto = Object.getPrototypeOf(db.prepare("SELECT 1"))
  db.close()
  for (const method of ["run", "all", "get", "iterate"]) {
    const original = proto[method]
    proto[method] = function(...args) {
      const start = process.hrtime.bigint()
      try {
        return original.apply(this, args)
      } finally {
        const key = normalise(this.source)
        const entry = stats.get(key) ?? { calls: 0, ns: 0n }
        entry.calls++
        entry.ns += process.hrtime.bigint() - start
        stats.set(key, entry)
      }
    }
  }
}

/** The statements by total time, with their calls and total ms. */
export const report = () =>
  [...stats].map(([sql, { calls, ns }]) => ({ sql, calls, ms: Number(ns / 1000n) / 1000 }))
    .sort((a, b) => b.ms - a.ms)

export const reset = () => stats.clear()
