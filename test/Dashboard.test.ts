/**
 * The live dashboard in a real browser: Debian's `chromium` (`/usr/bin/chromium`, installed by
 * `.ci/run` when missing) driven headless by `playwright-core` (no browser download), against a
 * real `autosync serve` with two `autosync agent` processes syncing. The page gets an admin token
 * in its URL fragment and must show both clients with their lag, and a throughput chart with
 * points; a screenshot is written to a temporary file (and to `AUTOSYNC_DASHBOARD_SCREENSHOT`
 * when set: that is how docs/dashboard.png was taken).
 *
 * Without chromium the test is skipped with a warning, except under CI=true, where it fails.
 */
import { copyFileSync, existsSync, statSync } from "node:fs"
import { chromium } from "playwright-core"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { assertBuilt, createToken, Processes, startServer, tempDir } from "./support/processes.js"

const browserPath = process.env.AUTOSYNC_CHROMIUM ?? "/usr/bin/chromium"
const haveBrowser = existsSync(browserPath)

// The flags the brief of this test asks for: no sandbox (containers), no GPU, no network of its own.
const browserFlags = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

const describeBrowser = (name: string, body: () => void) => {
  if (haveBrowser) return describe(name, body)
  if (process.env.CI === "true") {
    return describe(name, () => {
      it("chromium is installed", () => {
        throw new Error(`${browserPath} is missing (CI=true: the browser test must run; apt-get install -y chromium)`)
      })
    })
  }
  console.warn(`⚠ skipping "${name}": ${browserPath} is missing (apt-get install -y chromium)`)
  return describe.skip(name, body)
}

describeBrowser("the dashboard in headless chromium", () => {
  const procs = new Processes()
  const tmp = tempDir("dashboard")

  beforeAll(() => assertBuilt())
  afterEach(() => procs.killAll())
  afterAll(() => tmp.remove())

  it("shows both agents with their lag, and a throughput chart with points", { timeout: 180_000 }, async () => {
    const serverDb = tmp.file("server.db")
    const token = await createToken(procs, serverDb, ["notes"])
    const created = await procs.runCli(["token", "create", "--db", serverDb, "--admin"])
    expect(created.code, created.stderr).toBe(0)
    const admin = created.stdout.trim().split("\n").pop()!.trim()
    const server = await startServer(procs, serverDb)

    for (const name of ["a", "b"]) {
      const db = tmp.file(`${name}.db`)
      expect((await procs.runCli(["enroll", "notes", "--db", db])).code).toBe(0)
      for (let i = 0; i < 3; i++) {
        const put = await procs.runCli(["put", "notes", "note", `${name}${i}`, JSON.stringify({ i }), "--db", db])
        expect(put.code, put.stderr).toBe(0)
      }
      procs.cli(`agent ${name}`, ["agent", "--db", db, "--server", server.url, "--token", token])
    }

    const browser = await chromium.launchPersistentContext(tmp.file("profile"), {
      executablePath: browserPath,
      headless: true,
      args: browserFlags,
      viewport: { width: 1100, height: 720 }
    })
    try {
      const page = browser.pages()[0] ?? (await browser.newPage())
      await page.goto(`${server.url}/dashboard#token=${admin}`)
      // Both agents listed with a numeric lag (each has pulled at least once), generous deadline.
      // (In-page code is given as strings: this project's types have no DOM.)
      await page.waitForFunction(
        `(() => {
          const rows = [...document.querySelectorAll("tr[data-client]")]
          return rows.length === 2 && rows.every((row) => /^\\d+$/.test(row.querySelector(".lag")?.textContent ?? ""))
        })()`,
        undefined,
        { timeout: 120_000, polling: 250 }
      )
      // The chart: one polyline per series, a point per interval, and the pushes show above the baseline.
      const chart = await page.waitForFunction(
        `(() => {
          const pushed = document.querySelector("#chart polyline[data-series=pushed]")
          const points = (pushed?.getAttribute("points") ?? "").trim().split(/\\s+/).filter((p) => p.length > 0)
          const ys = points.map((p) => Number(p.split(",")[1]))
          return points.length > 1 && Math.min(...ys) < Math.max(...ys) ? points.length : undefined
        })()`,
        undefined,
        { timeout: 60_000, polling: 250 }
      )
      expect(await chart.jsonValue()).toBe(30)
      const rows = await page.$$eval("tr[data-client]", (trs) =>
        trs.map((tr) => ({
          id: tr.getAttribute("data-client"),
          lag: Number(tr.querySelector(".lag")?.textContent)
        })))
      expect(rows.map((r) => r.id).every((id) => id?.startsWith("replica-"))).toBe(true)
      for (const row of rows) expect(row.lag).toBeGreaterThanOrEqual(0)
      expect(await page.textContent("#count")).toBe("2")
      // The token left the address bar; it is kept for the tab only.
      expect(page.url()).not.toContain(admin)
      expect(await page.evaluate(`sessionStorage.getItem("autosync.adminToken")`)).toBe(admin)

      const shot = tmp.file("dashboard.png")
      await page.screenshot({ path: shot, fullPage: true })
      expect(statSync(shot).size).toBeGreaterThan(10_000)
      const keep = process.env.AUTOSYNC_DASHBOARD_SCREENSHOT
      if (keep !== undefined && keep.length > 0) copyFileSync(shot, keep)
      console.log(`dashboard screenshot: ${keep ?? shot}`)
    } finally {
      await browser.close()
    }
  })
})
