/**
 * The agent shows the stall watchdog's verdict on its status lines: a real agent process, a real
 * server, and between them a small HTTP proxy that cuts held requests (as a proxy with a short
 * idle timeout does), so live sync's long-poll fails while every short request passes.
 */
import { createServer, request as httpRequest } from "node:http"
import type { AddressInfo } from "node:net"
import { assert, describe, it } from "vitest"
import { sandbox, waitFor } from "./CliHarness.js"

// Forwards to `target`; while `cut()`, a pull held open (`wait_ms` > 0) is answered 502 at once.
const cuttingProxy = async (target: string, cut: () => boolean) => {
  const upstream = new URL(target)
  const server = createServer((req, res) => {
    const waitMs = Number(new URL(req.url ?? "/", target).searchParams.get("wait_ms") ?? "0")
    if (cut() && waitMs > 0) {
      req.resume()
      res.writeHead(502, { "content-type": "text/plain" }).end("upstream connection cut")
      return
    }
    const forwarded = httpRequest({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: req.headers
    }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    forwarded.on("error", () => res.destroy())
    req.pipe(forwarded)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

describe("autosync agent", () => {
  it(
    "shows stalled=watcher while live sync's long-poll keeps failing, and drops it once a long-poll is answered",
    async ({ onTestFinished }) => {
      const box = sandbox(onTestFinished)
      const server = await box.serve()
      const token = await box.token(["--db", box.path("server.db")], ["notes"])
      let cut = true
      const proxy = await cuttingProxy(server.url, () => cut)
      onTestFinished(() => proxy.close())
      // Polls far apart: after the first cycle, the lines that follow come from the watchdog alone.
      const agent = box.start(
        [
          "agent",
          "--db",
          box.path("a.db"),
          "--server",
          proxy.url,
          "--token",
          token,
          "--long-poll",
          "1 second",
          "--poll-interval",
          "60 seconds"
        ],
        { env: { AUTOSYNC_WATCHER_STALL_AFTER: "2 seconds" } }
      )
      const stalled = await box.waitForOutput(
        agent,
        /^\S+Z \w+ pushed=\d+ pulled=\d+ stalled=watcher stalled_since=\S+Z stall="live sync's long-poll has failed for over 2s without an answer: .*"$/m
      )
      cut = false
      // A later line without the stall: the next long-poll (held 1 s) was answered.
      await waitFor("a status line without the stall", () => {
        const after = agent.stdout().slice(agent.stdout().indexOf(stalled[0]) + stalled[0].length)
        return after.split("\n").find((line) => / healthy pushed=/.test(line) && !line.includes("stalled="))
      }, { timeoutMs: 60_000, intervalMs: 100, detail: () => agent.stdout() + agent.stderr() })
      // One line when the stall begins (not one per failed long-poll), one when it ends.
      assert.lengthOf(agent.stdout().match(/ stalled=watcher /g) ?? [], 1, agent.stdout())
      const exited = await box.stop(agent, "SIGINT")
      assert.deepStrictEqual([exited.code, exited.signal], [0, null], exited.stderr)
    },
    180_000
  )
})
