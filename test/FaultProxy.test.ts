/**
 * The fault proxy itself, against a counting upstream: each fault does what it claims (in
 * particular, which ones reach the server), and the decision sequence is a function of the seed.
 */
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { defaultRates, type Fault, FaultProxy, faults, schedule } from "./support/FaultProxy.js"

describe("FaultProxy", () => {
  let upstream: Server
  let received = 0
  let proxy: FaultProxy

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      let body = ""
      req.on("data", (c) => (body += String(c)))
      req.on("end", () => {
        received++
        res.writeHead(200, { "content-type": "application/json" })
        res.end(JSON.stringify({ n: received, echo: body, padding: "x".repeat(200) }))
      })
    })
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve))
    proxy = await FaultProxy.start({
      target: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      seed: 1,
      maxDelayMs: 400
    })
  })

  afterAll(async () => {
    await proxy?.close()
    upstream?.closeAllConnections()
    await new Promise<void>((resolve) => upstream ? upstream.close(() => resolve()) : resolve())
  })

  const call = async () => {
    const response = await fetch(`${proxy.url}/v1/push`, { method: "POST", body: "{\"a\":1}" })
    return { status: response.status, text: await response.text() }
  }

  const expectations: Record<Fault, { readonly forwarded: number; readonly outcome: "ok" | "error" | number }> = {
    drop_request: { forwarded: 0, outcome: "error" },
    drop_response: { forwarded: 1, outcome: "error" },
    duplicate: { forwarded: 2, outcome: "ok" },
    delay: { forwarded: 1, outcome: "ok" },
    error_500: { forwarded: 0, outcome: 500 },
    error_502_after_forward: { forwarded: 1, outcome: 502 },
    reset: { forwarded: 0, outcome: "error" },
    truncate_response: { forwarded: 1, outcome: "error" }
  }

  for (const fault of faults) {
    it(
      `${fault}: reaches the server ${expectations[fault].forwarded} time(s), the client sees ${
        expectations[fault].outcome
      }`,
      async () => {
        proxy.forced = fault
        const before = received
        const counted = proxy.counts[fault]
        const started = Date.now()
        const result = await call().then((r) => r, (error: unknown) => ({ error }))
        proxy.forced = undefined
        // A dropped answer may still be on its way to the upstream when the client gives up.
        await new Promise((resolve) => setTimeout(resolve, 50))
        const { forwarded, outcome } = expectations[fault]
        expect(received - before).toBe(forwarded)
        expect(proxy.counts[fault]).toBe(counted + 1)
        if (outcome === "error") expect(result).toHaveProperty("error")
        else if (outcome === "ok") {
          expect(result).toMatchObject({ status: 200 })
          expect(JSON.parse((result as { text: string }).text)).toMatchObject({ echo: "{\"a\":1}" })
        } else expect(result).toMatchObject({ status: outcome })
        if (fault === "delay") expect(Date.now() - started).toBeGreaterThanOrEqual(190)
      }
    )
  }

  it("forwards untouched when disabled", async () => {
    proxy.enabled = false
    const before = received
    const results = await Promise.all(Array.from({ length: 20 }, call))
    proxy.enabled = true
    expect(results.every((r) => r.status === 200)).toBe(true)
    expect(received - before).toBe(20)
  })

  it("takes its decisions from the seed", () => {
    expect(schedule(7, defaultRates, 200)).toEqual(schedule(7, defaultRates, 200))
    expect(schedule(7, defaultRates, 200)).not.toEqual(schedule(8, defaultRates, 200))
    const decisions = schedule(7, defaultRates, 2000)
    // Every kind of fault occurs, and about half of the requests meet one.
    for (const fault of faults) expect(decisions).toContain(fault)
    const faulty = decisions.filter((d) => d !== undefined).length
    expect(faulty).toBeGreaterThan(800)
    expect(faulty).toBeLessThan(1200)
  })
})
