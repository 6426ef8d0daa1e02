// Simulated clients for the server-scale bench: `clients` loops, each with its own client id,
// pushing `pushBatch` documents then pulling a page (`pullLimit`) from its cursor, as fast as
// the server answers, over keep-alive HTTP (fetch). Client i talks to urls[i % urls.length].
// Requests that start during the warm-up are not counted.
import { options, serve } from "../lib/child.mjs"

const opts = options()
const project = opts.project ?? "bench"

const percentile = (sorted, p) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]

const summary = (values) => {
  const sorted = Float64Array.from(values).sort()
  const round = (x) => Math.round(x * 10) / 10
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 50)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.length ? sorted[sorted.length - 1] : 0)
  }
}

const runLoad = async ({ clients, pullLimit, pushBatch, seconds, token, urls, warmupSeconds }) => {
  const started = performance.now()
  const countFrom = started + warmupSeconds * 1000
  const deadline = countFrom + seconds * 1000
  const pushMs = []
  const pullMs = []
  let pushed = 0
  let pulled = 0
  let errors = 0
  let firstError
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" }
  const client = async (i) => {
    const base = urls[i % urls.length]
    const clientId = `bench-load-${process.pid}-${i}`
    let clientSeq = 0
    let cursor = 0
    while (performance.now() < deadline) {
      const t0 = performance.now()
      const counted = t0 >= countFrom
      const mutations = Array.from({ length: pushBatch }, () => {
        const n = ++clientSeq
        return {
          client_seq: n,
          project,
          entity: "note",
          entity_key: `c${i}-${n % 500}`,
          op: "upsert",
          payload: { n, t: Date.now(), title: `Note ${n} of client ${i}`, tags: ["bench"] }
        }
      })
      try {
        const res = await fetch(`${base}/v1/push`, {
          method: "POST",
          headers,
          body: JSON.stringify({ client_id: clientId, mutations })
        })
        const body = await res.json()
        if (res.status !== 200) throw new Error(`push ${res.status}: ${JSON.stringify(body)}`)
        const t1 = performance.now()
        if (counted) {
          pushMs.push(t1 - t0)
          pushed += mutations.length
        }
        const pull = await fetch(`${base}/v1/pull?since_seq=${cursor}&limit=${pullLimit}`, { headers })
        const page = await pull.json()
        if (pull.status !== 200) throw new Error(`pull ${pull.status}: ${JSON.stringify(page)}`)
        if (page.mutations.length > 0) cursor = page.mutations[page.mutations.length - 1].seq
        if (counted) {
          pullMs.push(performance.now() - t1)
          pulled += page.mutations.length
        }
      } catch (error) {
        errors++
        firstError ??= String(error)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
  }
  await Promise.all(Array.from({ length: clients }, (_, i) => client(i)))
  const elapsed = (performance.now() - countFrom) / 1000
  return {
    seconds: Math.round(elapsed * 10) / 10,
    pushed,
    pulled,
    mutationsPerS: Math.round(pushed / elapsed),
    pulledPerS: Math.round(pulled / elapsed),
    push: summary(pushMs),
    pull: summary(pullMs),
    errors,
    firstError
  }
}

serve({}, { run: (message) => runLoad(message) })
