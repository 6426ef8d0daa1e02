// Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. `pnpm bench --profile`): self time
// by package, the functions with the most self time, and the most inclusive time among frames
// matching --match. A profile samples wall time: on a busy machine, time the process spent
// descheduled shows up in whatever it was doing (often writev), so compare with CPU figures.
// Usage: node bench/profile-summary.mjs FILE.cpuprofile [--top 25] [--match autosync]
import { readFileSync } from "node:fs"

const args = process.argv.slice(2)
const file = args.find((a) => !a.startsWith("--") && !/^\d+$/.test(a))
if (!file) {
  console.error("usage: node bench/profile-summary.mjs FILE.cpuprofile [--top N] [--match TEXT]")
  process.exit(2)
}
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback
}
const top = Number(flag("top", "25"))
const match = flag("match", "/packages/")

const profile = JSON.parse(readFileSync(file, "utf8"))
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const parent = new Map()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)

// Time per sample from the deltas (microseconds).
const selfUs = new Map()
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0)

const where = (n) => {
  const url = n.callFrame.url.replace(/^file:\/\//, "").replace(/.*node_modules\/\.pnpm\/[^/]+\/node_modules\//, "")
  return `${n.callFrame.functionName || "(anonymous)"} ${url.replace(/^.*\/packages\//, "packages/")}:${
    n.callFrame.lineNumber + 1
  }`
}

const self = new Map()
const inclusive = new Map()
for (const [id, us] of selfUs) {
  const node = byId.get(id)
  const key = where(node)
  self.set(key, (self.get(key) ?? 0) + us)
  // Inclusive: every distinct frame on the stack gets the sample once.
  const seen = new Set()
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const n = byId.get(cur)
    if (!n.callFrame.url.includes(match)) continue
    const k = where(n)
    if (seen.has(k)) continue
    seen.add(k)
    inclusive.set(k, (inclusive.get(k) ?? 0) + us)
  }
}

const packageOf = (n) => {
  const { functionName, url } = n.callFrame
  if (!url) return functionName.startsWith("(") ? functionName : `native ${functionName}`
  const workspace = /\/packages\/([^/]+)\//.exec(url)
  if (workspace && !url.includes("node_modules")) return `@autosync/${workspace[1]}`
  if (/ParseResult|Schema(AST)?\.js/.test(url)) return "effect (Schema)"
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules)/.exec(url)
  if (pkg) return pkg[1]
  return url.startsWith("node:") ? "node internals" : url
}
const byPackage = new Map()
for (const [id, us] of selfUs) {
  const key = packageOf(byId.get(id))
  byPackage.set(key, (byPackage.get(key) ?? 0) + us)
}

const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(7)} ms`
const show = (title, map) => {
  console.log(`\n${title}`)
  for (const [k, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`)
}
console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled`)
show("self time by package", byPackage)
show("self time", self)
show(`inclusive time, frames matching ${JSON.stringify(match)}`, inclusive)
