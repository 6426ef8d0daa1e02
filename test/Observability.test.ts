/**
 * Metrics and traces of real processes: `autosync serve`'s `GET /metrics` and `autosync agent
 * --metrics-port`, scraped and parsed with a Prometheus text parser while the test pushes and
 * pulls; and OTLP traces, received by an in-process OTLP/HTTP receiver, where an agent's push and
 * the server's handling of it share one trace id.
 */
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { Readable } from "node:stream"
import { getMetricsFromStream, type PromMetrics } from "prom2javascript"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { assertBuilt, createToken, type Proc, Processes, startServer, tempDir, waitFor } from "./support/processes.js"

const project = "notes"

/**
 * One scrape, parsed by a Prometheus text parser: a series' value by metric name and labels (a
 * histogram's: its count; absent: `undefined`).
 */
const scrape = async (url: string) => {
  const response = await fetch(url)
  expect(response.status).toBe(200)
  expect(response.headers.get("content-type")).toContain("text/plain")
  const metrics: PromMetrics = await getMetricsFromStream(Readable.from([await response.text()]))
  const value = (name: string, labels: Record<string, string> = {}): number | undefined => {
    const series = (metrics[name]?.data ?? []) as ReadonlyArray<
      { readonly labels: Record<string, string>; readonly value?: number; readonly count?: number }
    >
    const found = series.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    return found === undefined ? undefined : found.value ?? found.count
  }
  return { metrics, value }
}

const push = async (url: string, token: string, clientId: string, from: number, count: number) => {
  const response = await fetch(`${url}/v1/push`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      client_id: clientId,
      mutations: Array.from({ length: count }, (_, i) => ({
        client_seq: from + i,
        project,
        entity: "note",
        entity_key: `k${from + i}`,
        op: "upsert",
        payload: { n: from + i }
      }))
    })
  })
  expect(response.status).toBe(200)
}

const pull = (url: string, token: string, since: number, waitMs = 0) =>
  fetch(`${url}/v1/pull?since_seq=${since}&limit=100&wait_ms=${waitMs}`, {
    headers: { authorization: `Bearer ${token}` }
  }).then(async (r) => ({ status: r.status, body: await r.json() as { latest_seq: number } }))

describe("observability", () => {
  const procs = new Processes()
  const tmp = tempDir("observability")
  beforeAll(() => assertBuilt())
  afterEach(() => procs.killAll())
  afterAll(() => tmp.remove())

  it("the server's /metrics counts requests, pushes, pulls, held pulls and the log", { timeout: 120_000 }, async () => {
    const db = tmp.file("server-metrics.db")
    const token = await createToken(procs, db, [project])
    const { url } = await startServer(procs, db)

    const before = await scrape(`${url}/metrics`)
    expect(before.value("autosync_server_log_rows")).toBe(0)
    expect(before.value("autosync_server_rejections_total", { status: "429" })).toBe(0)
    expect(before.value("autosync_server_rejections_total", { status: "503" })).toBe(0)
    expect(before.value("autosync_server_compaction_runs_total")).toBe(0)

    await push(url, token, "client-a", 1, 5)
    await push(url, token, "client-a", 6, 3)
    expect((await pull(url, token, 0)).body.latest_seq).toBe(8)
    // A request without a token is counted too, under its status.
    expect((await fetch(`${url}/v1/pull?since_seq=0&limit=1`)).status).toBe(401)

    const after = await scrape(`${url}/metrics`)
    expect(after.value("autosync_server_requests_total", { route: "/v1/push", method: "POST", status: "200" })).toBe(
      2
    )
    expect(after.value("autosync_server_requests_total", { route: "/v1/pull", status: "200" })).toBe(1)
    expect(after.value("autosync_server_requests_total", { route: "/v1/pull", status: "401" })).toBe(1)
    expect(after.value("autosync_server_mutations_accepted_total")).toBe(8)
    expect(after.value("autosync_server_push_duration_seconds")).toBe(2)
    expect(after.value("autosync_server_pull_duration_seconds", { long_poll: "false" })).toBe(2)
    expect(after.value("autosync_server_log_rows")).toBe(8)
    expect(after.value("autosync_server_latest_seq")).toBe(8)
    // A random path is counted as `other`, not as a series of its own.
    await fetch(`${url}/no/such/path`)
    expect((await scrape(`${url}/metrics`)).value("autosync_server_requests_total", { route: "other" })).toBe(1)

    // A held pull shows while it waits, and is gone once a push answers it.
    const held = pull(url, token, 8, 20_000)
    await waitFor(
      "the pull to be held",
      30_000,
      async () => (await scrape(`${url}/metrics`)).value("autosync_server_held_pulls") === 1 ? true : undefined
    )
    await push(url, token, "client-b", 1, 1)
    expect((await held).body.latest_seq).toBe(9)
    const last = await scrape(`${url}/metrics`)
    expect(last.value("autosync_server_held_pulls")).toBe(0)
    expect(last.value("autosync_server_pull_duration_seconds", { long_poll: "true" })).toBe(1)
    expect(last.value("autosync_server_latest_seq")).toBe(9)
  })

  it("agent --metrics-port serves the manager's metrics, which move as it syncs", { timeout: 120_000 }, async () => {
    const serverDb = tmp.file("agent-metrics-server.db")
    const replica = tmp.file("agent-metrics-replica.db")
    const token = await createToken(procs, serverDb, [project])
    const { url } = await startServer(procs, serverDb)
    const cli = async (...args: ReadonlyArray<string>) => {
      const result = await procs.runCli(args, { timeoutMs: 60_000 })
      expect(result.code, result.stderr).toBe(0)
    }
    await cli("enroll", "--db", replica, project)
    await cli("put", "--db", replica, project, "note", "a", "1")
    await cli("put", "--db", replica, project, "note", "b", "2")

    const agent = procs.cli("agent", [
      "agent",
      "--db",
      replica,
      "--server",
      url,
      "--token",
      token,
      "--metrics-port",
      "0",
      "--poll-interval",
      "200 millis",
      "--long-poll",
      "0"
    ])
    const metricsUrl = await waitFor("the agent's metrics address", 30_000, () => {
      if (!agent.running) throw new Error(`agent exited\n${agent.describe()}`)
      return /metrics at (http:\/\/\S+\/metrics)/.exec(agent.stderr)?.[1]
    })
    const settled = (pushed: number, pulled: number) =>
      waitFor(`pushed ${pushed} and pulled ${pulled}`, 60_000, async () => {
        const m = await scrape(metricsUrl)
        return m.value("autosync_pushed_total") === pushed && m.value("autosync_pulled_total") === pulled &&
            m.value("autosync_pending_rows") === 0 && m.value("autosync_lag_seqs") === 0 &&
            (m.value("autosync_cycle_duration_seconds") ?? 0) > 0
          ? m
          : undefined
      }, { diagnostics: () => agent.describe() })

    const first = await settled(2, 0)
    expect(first.value("autosync_failed_cycles_total")).toBe(0)
    expect(first.value("autosync_stalled")).toBe(0)

    // Another client's writes arrive by pulling; a local write goes out by pushing.
    await push(url, token, "someone-else", 1, 3)
    await cli("put", "--db", replica, project, "note", "c", "3")
    await settled(3, 3)
    expect(agent.running).toBe(true)
  })

  describe("OTLP traces", () => {
    let receiver: Server
    let endpoint = ""
    const spans: Array<{ service: string; name: string; traceId: string; spanId: string; parentSpanId?: string }> = []
    beforeAll(async () => {
      // An OTLP/HTTP receiver (JSON): collects the spans of every export request.
      receiver = createServer((req, res) => {
        let body = ""
        req.setEncoding("utf8").on("data", (chunk: string) => body += chunk).on("end", () => {
          if (req.url === "/v1/traces") {
            const data = JSON.parse(body) as {
              resourceSpans: Array<{
                resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> }
                scopeSpans: Array<
                  { spans: Array<{ name: string; traceId: string; spanId: string; parentSpanId?: string }> }
                >
              }>
            }
            for (const rs of data.resourceSpans) {
              const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? ""
              for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ service, ...s })
            }
          }
          res.writeHead(200, { "content-type": "application/json" }).end("{}")
        })
      })
      await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve))
      endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`
    })
    afterAll(() => new Promise<void>((resolve) => receiver.close(() => resolve())))

    it("an agent's push and the server's push handler share one trace", { timeout: 120_000 }, async () => {
      const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }
      const serverDb = tmp.file("traces-server.db")
      const replica = tmp.file("traces-replica.db")
      const token = await createToken(procs, serverDb, [project])
      const server: Proc = procs.cli("server", ["serve", "--db", serverDb, "--port", "0"], otel)
      const url = await waitFor("the server to listen", 30_000, () => {
        if (!server.running) throw new Error(`server exited\n${server.describe()}`)
        return /listening on (http:\/\/[0-9.]+:\d+)/.exec(server.stdout)?.[1]
      })
      for (const args of [["enroll", "--db", replica, project], ["put", "--db", replica, project, "note", "a", "1"]]) {
        expect((await procs.runCli(args)).code).toBe(0)
      }
      const agent = procs.cli(
        "agent",
        ["agent", "--db", replica, "--server", url, "--token", token, "--long-poll", "0"],
        { ...otel, OTEL_SERVICE_NAME: "test-agent" }
      )
      // The chain of parents from the server's push span up to its root, once all are received.
      const chainOf = (spanId: string) => {
        const byId = new Map(spans.map((s) => [s.spanId, s]))
        const chain: Array<string> = []
        for (let s = byId.get(spanId); s !== undefined; s = s.parentSpanId ? byId.get(s.parentSpanId) : undefined) {
          chain.push(`${s.service}:${s.name}`)
        }
        return chain
      }
      const chain = await waitFor("a push span of the agent and of the server in one trace", 60_000, () => {
        const agentPush = spans.filter((s) => s.service === "test-agent" && s.name === "SyncManager.push")
        const serverPush = spans.filter((s) => s.service === "autosync-server" && s.name === "SyncServer.push")
        const shared = serverPush.find((s) => agentPush.some((a) => a.traceId === s.traceId))
        if (shared === undefined) return undefined
        expect(shared.traceId).toMatch(/^[0-9a-f]{32}$/)
        const chain = chainOf(shared.spanId)
        return chain.includes("test-agent:SyncManager.cycle") ? chain : undefined
      }, { diagnostics: () => `spans: ${JSON.stringify(spans.map((s) => [s.service, s.name]))}\n${agent.describe()}` })
      // The server's span hangs under its HTTP span, whose parent is the agent's HTTP client span.
      expect(chain.slice(0, 2)).toEqual(["autosync-server:SyncServer.push", "autosync-server:http.server POST"])
      expect(chain).toContain("test-agent:SyncManager.push")
      expect(chain).toContain("test-agent:SyncManager.cycle")
    })
  })
})
