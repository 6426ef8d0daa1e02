// A replica in its own process: a SQLite file (`SqliteLocalStore.layerFile`) and, unless
// `sync: false`, a `SyncManager` against the server over `HttpCloudTransport`. Writes carry
// their write time (`t`, epoch ms) in the payload, so the reader measures propagation on apply.
import { LocalStore, SyncConfig, SyncManager } from "@autosync/core"
import { HttpCloudTransport } from "@autosync/http"
import { SqliteLocalStore } from "@autosync/sqlite"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { setTimeout as sleep } from "node:timers/promises"
import { memory, options, serve } from "../lib/child.mjs"

const opts = options()
if (opts.sqlStats) (await import("../lib/sqlstats.mjs")).install()
const project = opts.project ?? "bench"
const run = (effect) => Effect.runPromise(effect)

const scope = Effect.runSync(Scope.make())
const storeLayer = SqliteLocalStore.layerFile(opts.file)
const layer = opts.sync === false
  ? storeLayer
  : Layer.merge(storeLayer, HttpCloudTransport.layer({ baseUrl: opts.serverUrl, token: opts.token }))
const context = await run(Layer.buildWithScope(layer, scope))
const raw = Context.get(context, LocalStore.LocalStore)

// What this replica applied: how many, when the last one was, and each one's delay since its write.
let applied = 0
let lastAppliedAt = 0
const delays = []
const waiters = []
const record = (mutation, result) => {
  if (result !== "applied") return
  const at = Date.now()
  applied++
  lastAppliedAt = at
  if (typeof mutation.payload?.t === "number") delays.push(at - mutation.payload.t)
}
const wake = () => {
  for (let i = waiters.length - 1; i >= 0; i--) {
    if (applied >= waiters[i].count) waiters.splice(i, 1)[0].resolve()
  }
}
const store = {
  ...raw,
  applyPulledMutation: (targetKey, mutation) =>
    Effect.tap(raw.applyPulledMutation(targetKey, mutation), (result) =>
      Effect.sync(() => {
        record(mutation, result)
        wake()
      })),
  ...(raw.applyPulledMutations === undefined ? {} : {
    applyPulledMutations: (targetKey, mutations, options) =>
      Effect.tap(raw.applyPulledMutations(targetKey, mutations, options), (results) =>
        Effect.sync(() => {
          results.forEach((result, i) => record(mutations[i], result))
          wake()
        }))
  })
}

let manager
let syncStartedAt
if (opts.sync !== false) {
  const config = await run(SyncConfig.make({ leaseOwner: `bench-${process.pid}`, ...opts.config }))
  manager = await run(
    SyncManager.make(config).pipe(Effect.provideService(LocalStore.LocalStore, store), Effect.provide(context))
  )
  syncStartedAt = Date.now()
  await run(Effect.forkIn(manager.run, scope))
}
await run(raw.enroll(project))

const doc = (n, t) => ({
  project,
  entity: "note",
  entityKey: `note-${String(n).padStart(7, "0")}`,
  op: "upsert",
  payload: { n, t, title: `Note ${n}`, tags: ["bench", n % 2 === 0 ? "even" : "odd"] }
})

const writeBatch = async (from, count) => {
  const t = Date.now()
  const entries = Array.from({ length: count }, (_, i) => doc(from + i, t))
  await run(raw.appendLocal("cloud", entries))
  if (manager) await run(manager.notifyDirty)
}

serve({ syncStartedAt, ...memory() }, {
  /** As fast as possible: `rows` documents from `from`, `batch` per transaction. */
  write: async ({ batch, from = 0, rows }) => {
    const startedAt = Date.now()
    for (let n = from; n < from + rows; n += batch) {
      await writeBatch(n, Math.min(batch, from + rows - n))
      await new Promise((resolve) => setImmediate(resolve))
    }
    return { startedAt, endedAt: Date.now() }
  },
  /** `rate` documents per second for `seconds`: every `tickMs`, one transaction with the rows due. */
  writeAtRate: async ({ from = 0, rate, seconds, tickMs }) => {
    const startedAt = Date.now()
    const total = Math.round(rate * seconds)
    let written = 0
    let ticks = 0
    let maxTickMs = 0
    while (written < total) {
      const tickStart = Date.now()
      const due = Math.min(total, Math.floor(((tickStart - startedAt) * rate) / 1000)) - written
      if (due > 0) {
        await writeBatch(from + written, due)
        written += due
        ticks++
      }
      const spent = Date.now() - tickStart
      maxTickMs = Math.max(maxTickMs, spent)
      await sleep(Math.max(1, tickMs - spent))
    }
    return { startedAt, endedAt: Date.now(), written, ticks, maxWriteMs: maxTickMs }
  },
  /** Resolves when `count` mutations were applied here. */
  awaitApplied: async ({ count }) => {
    if (applied < count) await new Promise((resolve) => waiters.push({ count, resolve }))
    return { applied, lastAppliedAt }
  },
  applied: () => ({ applied, lastAppliedAt }),
  delays: () => ({ delays }),
  resetDelays: () => {
    delays.length = 0
    return {}
  },
  pending: async () => ({ pending: await run(raw.countPending("cloud")) }),
  /** Resolves when nothing is pending any more; the largest heap and RSS seen meanwhile, in MiB. */
  awaitPushed: async ({ pollMs = 100 }) => {
    const peak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0 }
    const sample = () => {
      const m = process.memoryUsage()
      for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], m[k] / 2 ** 20)
    }
    const sampler = setInterval(sample, 50)
    try {
      while (true) {
        sample()
        const pending = await run(raw.countPending("cloud"))
        if (pending === 0) return { at: Date.now(), peakMiB: peak }
        await sleep(pollMs)
      }
    } finally {
      clearInterval(sampler)
    }
  },
  status: async () => ({ status: manager ? await run(manager.status) : undefined })
}, async () => {
  if (manager) await run(manager.stop)
  await run(Scope.close(scope, Exit.void))
})
