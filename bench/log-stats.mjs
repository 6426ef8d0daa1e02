// How long the log's `size` (rows and latest seq, what /metrics reads) and its full `stats` take on a SQLite log of N rows (default
// 100,000; 10 rows per key). Usage: node bench/log-stats.mjs [rows]. Prints one line per read.
import { MutationLog, SqliteMutationLog } from "@autosync/server"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const total = Number(process.argv[2] ?? 100_000)
const dir = mkdtempSync(join(tmpdir(), "autosync-log-stats-"))
const timed = (label, effect) =>
  Effect.gen(function*() {
    yield* effect // warm
    const runs = []
    for (let i = 0; i < 5; i++) {
      const start = performance.now()
      yield* effect
      runs.push(performance.now() - start)
    }
    runs.sort((a, b) => a - b)
    console.log(`${label}: median ${runs[2].toFixed(1)} ms (min ${runs[0].toFixed(1)}, max ${runs[4].toFixed(1)})`)
  })

const program = Effect.gen(function*() {
  const log = yield* MutationLog.MutationLog
  for (let at = 0; at < total; at += 1000) {
    const entries = Array.from({ length: Math.min(1000, total - at) }, (_, i) => ({
      clientSeq: at + i + 1,
      project: "p1",
      entity: "document",
      entityKey: `k${(at + i) % (total / 10)}`,
      op: (at + i) % 7 === 0 ? "delete" : "upsert",
      payload: (at + i) % 7 === 0 ? null : { n: at + i }
    }))
    yield* log.append("bench", entries)
  }
  console.log(`${total} rows`)
  yield* timed("size", log.size)
  yield* timed("stats", log.stats)
}).pipe(Effect.provide(SqliteMutationLog.layerFile({ file: join(dir, "server.db") })))

Effect.runPromise(program).finally(() => rmSync(dir, { recursive: true, force: true }))
