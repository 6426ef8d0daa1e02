/**
 * A fault-injecting HTTP proxy between real agents and the real sync server, on 127.0.0.1
 * port 0. From a seed it decides, per request, one fault (or none) and counts each one:
 *
 * - `drop_request`: the request is not forwarded; the client's connection is closed unanswered.
 * - `drop_response`: the request is forwarded (the server applied it), then the client's
 *   connection is closed without the answer.
 * - `duplicate`: the request is forwarded twice, concurrently; the client gets the second answer.
 * - `delay`: forwarded after a pause of up to `maxDelayMs`.
 * - `error_500`: answered 500 without forwarding.
 * - `error_502_after_forward`: forwarded (applied), then answered 502 instead of the answer.
 * - `reset`: the client's connection is reset (RST) before anything is forwarded.
 * - `truncate_response`: forwarded; the client gets the status, headers and half the body, then
 *   a reset.
 *
 * The decision sequence depends on the seed only ({@link schedule}); which request meets which
 * decision depends on timing. `enabled = false` makes it a plain forwarder. When the server is
 * down (restarting), requests get a 502 counted as `upstreamErrors`, not as an injected fault.
 */
import { createServer, type IncomingHttpHeaders, request as httpRequest, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { prng, sleep } from "./processes.js"

export const faults = [
  "drop_request",
  "drop_response",
  "duplicate",
  "delay",
  "error_500",
  "error_502_after_forward",
  "reset",
  "truncate_response"
] as const

export type Fault = typeof faults[number]

export type Rates = Readonly<Record<Fault, number>>

/** About half of the requests meet a fault. */
export const defaultRates: Rates = {
  drop_request: 0.07,
  drop_response: 0.08,
  duplicate: 0.08,
  delay: 0.1,
  error_500: 0.04,
  error_502_after_forward: 0.05,
  reset: 0.04,
  truncate_response: 0.04
}

/** The decisions a seeded proxy makes, in order (for tests of the proxy itself). */
export const decider = (seed: number, rates: Rates) => {
  const random = prng(seed)
  return () => {
    const r = random.next()
    let acc = 0
    for (const fault of faults) {
      acc += rates[fault]
      if (r < acc) return { fault, fraction: random.next() }
    }
    return { fault: undefined, fraction: 0 }
  }
}

export const schedule = (seed: number, rates: Rates, n: number) => {
  const next = decider(seed, rates)
  return Array.from({ length: n }, () => next().fault)
}

interface Upstream {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: Buffer
}

const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "content-length",
  "host"
])

const endToEnd = (headers: IncomingHttpHeaders) => {
  const out: Record<string, string | Array<string>> = {}
  for (const [key, value] of Object.entries(headers)) {
    if (value !== undefined && !hopByHop.has(key.toLowerCase())) out[key] = value
  }
  return out
}

export interface Options {
  readonly target: string
  readonly seed: number
  readonly rates?: Partial<Rates>
  readonly maxDelayMs?: number
}

const sum = (counts: Record<Fault, number>) => Object.values(counts).reduce((a, b) => a + b, 0)

export class FaultProxy {
  /** Injected faults, per kind. */
  readonly counts: Record<Fault, number> = Object.fromEntries(faults.map((f) => [f, 0])) as Record<Fault, number>
  /** Injected faults on `POST /v1/push`, per kind. */
  readonly pushCounts: Record<Fault, number> = Object.fromEntries(faults.map((f) => [f, 0])) as Record<Fault, number>
  /** Injected faults on `GET /v1/pull`, per kind. */
  readonly pullCounts: Record<Fault, number> = Object.fromEntries(faults.map((f) => [f, 0])) as Record<Fault, number>
  requests = 0
  pushes = 0
  pulls = 0
  forwarded = 0
  upstreamErrors = 0
  enabled = true
  /** When set, every request meets this fault (or none, with `null`), bypassing the seed. */
  forced: Fault | null | undefined = undefined

  private readonly next: ReturnType<typeof decider>
  private readonly maxDelayMs: number
  private target: URL

  private constructor(private readonly server: Server, options: Options) {
    this.next = decider(options.seed, { ...defaultRates, ...options.rates })
    this.maxDelayMs = options.maxDelayMs ?? 400
    this.target = new URL(options.target)
  }

  static async start(options: Options): Promise<FaultProxy> {
    const server = createServer()
    const proxy = new FaultProxy(server, options)
    server.on("request", (req, res) => {
      proxy.handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(502).end()
        else res.destroy()
      })
    })
    // Keep-alive sockets are closed with the proxy, not left to time out.
    server.keepAliveTimeout = 2_000
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    return proxy
  }

  get url() {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  setTarget(url: string) {
    this.target = new URL(url)
  }

  get injected() {
    return sum(this.counts)
  }

  private choose(): { readonly fault: Fault | undefined; readonly fraction: number } {
    if (this.forced !== undefined) return { fault: this.forced ?? undefined, fraction: 0.5 }
    if (!this.enabled) return { fault: undefined, fraction: 0 }
    return this.next()
  }

  private forward(method: string, path: string, headers: IncomingHttpHeaders, body: Buffer): Promise<Upstream> {
    const target = this.target
    return new Promise((resolve, reject) => {
      const upstream = httpRequest({
        host: target.hostname,
        port: target.port,
        method,
        path,
        headers: { ...endToEnd(headers), "content-length": String(body.length), connection: "close" },
        agent: false,
        timeout: 40_000
      }, (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on(
          "end",
          () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) })
        )
        res.on("error", reject)
      })
      upstream.on("timeout", () => upstream.destroy(new Error("upstream timed out")))
      upstream.on("error", reject)
      upstream.end(body)
    })
  }

  private async handle(
    req: import("node:http").IncomingMessage,
    res: import("node:http").ServerResponse
  ): Promise<void> {
    const chunks: Array<Buffer> = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks)
    this.requests++
    const isPush = req.method === "POST" && req.url?.startsWith("/v1/push") === true
    const isPull = req.method === "GET" && req.url?.startsWith("/v1/pull") === true
    if (isPush) this.pushes++
    if (isPull) this.pulls++
    const { fault, fraction } = this.choose()
    if (fault !== undefined) {
      this.counts[fault]++
      if (isPush) this.pushCounts[fault]++
      if (isPull) this.pullCounts[fault]++
    }
    const method = req.method ?? "GET"
    const path = req.url ?? "/"

    switch (fault) {
      case "drop_request":
        req.socket.destroy()
        return
      case "reset":
        req.socket.resetAndDestroy()
        return
      case "error_500":
        res.writeHead(500, { "content-type": "application/json", connection: "close" })
        res.end(JSON.stringify({ _tag: "ServerError", message: "injected by the fault proxy" }))
        return
      case "delay":
        await sleep(Math.round(fraction * this.maxDelayMs))
        break
    }

    let upstream: Upstream
    try {
      if (fault === "duplicate") {
        const [, second] = await Promise.all([
          this.forward(method, path, req.headers, body),
          this.forward(method, path, req.headers, body)
        ])
        upstream = second
        this.forwarded += 2
      } else {
        upstream = await this.forward(method, path, req.headers, body)
        this.forwarded++
      }
    } catch (error) {
      this.upstreamErrors++
      if (res.destroyed) return
      res.writeHead(502, { "content-type": "application/json", connection: "close" })
      res.end(JSON.stringify({ message: `the fault proxy could not reach the server: ${String(error)}` }))
      return
    }

    switch (fault) {
      case "drop_response":
        req.socket.destroy()
        return
      case "error_502_after_forward":
        res.writeHead(502, { "content-type": "application/json", connection: "close" })
        res.end(JSON.stringify({ message: "injected by the fault proxy after forwarding" }))
        return
      case "truncate_response": {
        res.writeHead(upstream.status, {
          ...endToEnd(upstream.headers),
          "content-length": String(upstream.body.length)
        })
        res.write(upstream.body.subarray(0, Math.floor(upstream.body.length / 2)), () => req.socket.resetAndDestroy())
        return
      }
    }
    if (res.destroyed) return
    res.writeHead(upstream.status, { ...endToEnd(upstream.headers), "content-length": String(upstream.body.length) })
    res.end(upstream.body)
  }

  summary() {
    return {
      requests: this.requests,
      pushes: this.pushes,
      pulls: this.pulls,
      forwarded: this.forwarded,
      injected: this.injected,
      injectedOnPushes: sum(this.pushCounts),
      injectedOnPulls: sum(this.pullCounts),
      upstreamErrors: this.upstreamErrors,
      faults: { ...this.counts },
      pushFaults: { ...this.pushCounts },
      pullFaults: { ...this.pullCounts }
    }
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
