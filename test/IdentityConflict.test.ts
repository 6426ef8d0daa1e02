/**
 * A copied replica file, end to end with real processes: the copy shares the original's client
 * id, so its first push of a journal seq the original already pushed with other content is
 * refused (409). Its agent says so (reason `identity_conflict`, with the fix), `autosync
 * reidentify` refuses while that agent holds the file and then gives the copy a new identity,
 * and after that both replicas sync and end with the same documents.
 */
import { Status } from "@autosync/core"
import { Schema } from "effect"
import { copyFileSync, existsSync } from "node:fs"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { assertBuilt, createToken, type Proc, Processes, startServer, tempDir, waitFor } from "./support/processes.js"

const project = "notes"

/** `status --json` output: exactly a `Status.StatusReport` (snake_case keys, ISO dates). */
const parseStatusReport = (text: string) =>
  Schema.encodeSync(Status.StatusReport)(
    Schema.decodeUnknownSync(Schema.parseJson(Status.StatusReport))(text, { onExcessProperty: "error" })
  )

describe("identity conflicts", () => {
  const procs = new Processes()
  const tmp = tempDir("identity")
  beforeAll(() => assertBuilt())
  afterEach(() => procs.killAll())
  afterAll(() => tmp.remove())

  const cli = async (...args: ReadonlyArray<string>) => {
    const result = await procs.runCli(args, { timeoutMs: 60_000 })
    if (result.code !== 0) throw new Error(`autosync ${args.join(" ")} failed (${result.code}): ${result.stderr}`)
    return result.stdout
  }
  const status = async (db: string) => parseStatusReport(await cli("status", "--db", db, "--json"))
  const documents = async (db: string) => JSON.parse(await cli("list", "--db", db, "--json", project)) as unknown

  it("a copied file gets identity_conflict; after reidentify both converge", { timeout: 240_000 }, async () => {
    const server = await startServer(procs, tmp.file("server.db"))
    const token = await createToken(procs, tmp.file("server.db"), [project])
    const a = tmp.file("a.db")
    const b = tmp.file("b.db")
    const agent = (name: string, db: string): Proc =>
      procs.cli(name, [
        "agent",
        "--db",
        db,
        "--server",
        server.url,
        "--token",
        token,
        "--json",
        "--debounce",
        "50 millis"
      ])
    const synced = (db: string, who: Proc) =>
      waitFor(`${db} to have nothing pending`, 60_000, async () => {
        if (!who.running) throw new Error(who.describe())
        return (await status(db)).pending === 0 ? true : undefined
      }, { intervalMs: 200, diagnostics: () => who.describe() })

    // The original syncs a first note, then its file is copied (agent stopped: the file is at rest).
    await cli("enroll", "--db", a, project)
    await cli("put", "--db", a, project, "note", "first", "\"shared history\"")
    let agentA = agent("agent a", a)
    await synced(a, agentA)
    await agentA.stop()
    for (const suffix of ["", "-wal"]) if (existsSync(a + suffix)) copyFileSync(a + suffix, b + suffix)
    expect((await status(b)).client_id).toBe((await status(a)).client_id)

    // Both write their next journal seq, with different content; the original pushes first.
    await cli("put", "--db", a, project, "note", "from-a", "\"written on a\"")
    await cli("put", "--db", b, project, "note", "from-b", "\"written on b\"")
    agentA = agent("agent a", a)
    await synced(a, agentA)

    let agentB = agent("agent b", b)
    const conflict = await waitFor("the copy's agent to report identity_conflict", 60_000, () => {
      if (!agentB.running) throw new Error(agentB.describe())
      return agentB.stdout.split("\n").filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { reason_code?: string; reason_message?: string })
        .find((s) => s.reason_code === "identity_conflict")
    }, { intervalMs: 100, diagnostics: () => agentB.describe() })
    expect(conflict.reason_message).toMatch(/copied or shares its identity/)
    expect(conflict.reason_message).toContain("autosync reidentify --db FILE")
    const persisted = await status(b)
    expect(persisted.reason_code).toBe("identity_conflict")
    expect(persisted.pending).toBe(1)

    // Refused while the copy's agent holds the file; done once it is stopped.
    const refused = await procs.runCli(["reidentify", "--db", b])
    expect(refused.code, refused.stdout).toBe(1)
    expect(refused.stderr).toMatch(/holds the lease/)
    await agentB.stop()
    const reidentified = await cli("reidentify", "--db", b)
    const [, before, after] = /client id (\S+) → (\S+); 1 pending rows re-keyed/.exec(reidentified) ?? []
    expect(before, reidentified).toBe(persisted.client_id)
    expect(after).not.toBe(before)
    expect((await status(b)).client_id).toBe(after)

    agentB = agent("agent b", b)
    const expected = { entity: "note" }
    await waitFor("both replicas to hold all three notes, the same", 90_000, async () => {
      if (!agentA.running) throw new Error(agentA.describe())
      if (!agentB.running) throw new Error(agentB.describe())
      const [onA, onB] = [await documents(a), await documents(b)]
      return JSON.stringify(onA) === JSON.stringify(onB) && (onA as Array<unknown>).length === 3 ? true : undefined
    }, { intervalMs: 250, diagnostics: () => `${agentA.describe()}\n${agentB.describe()}` })
    expect(await documents(b)).toEqual([
      { ...expected, key: "first", value: "shared history" },
      { ...expected, key: "from-a", value: "written on a" },
      { ...expected, key: "from-b", value: "written on b" }
    ])
    expect((await status(b)).reason_code).toBe(null)
    await server.proc.stop()
  })

  it("reidentify refuses a missing file and creates nothing", async () => {
    const missing = tmp.file("missing.db")
    const result = await procs.runCli(["reidentify", "--db", missing])
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/no replica at/)
    expect(existsSync(missing)).toBe(false)
  })
})
