/**
 * The packages as a user gets them: `pnpm pack` of every package, installed with npm into a fresh
 * application outside the workspace (with `effect` and the `@effect/*` peers at the ranges the
 * project supports), then the README's embedding example (examples/embed.ts, transpiled as it is)
 * run there on two replica files, synced through a server started by the INSTALLED `autosync`.
 *
 * Proves: the packed manifests resolve (no `workspace:*` left, `dist` shipped, no `source`
 * condition pointing at TypeScript), the application ends with one copy of `effect` (the
 * libraries take it as a peer), the CLI tarball runs its bundle, the example works, and an
 * application's own vitest runs `@autosync/testkit`'s LocalStore suite (with `@autosync/core/testing`).
 * npm compiles better-sqlite3 here, so this takes a minute or two.
 */
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import ts from "typescript"
import { afterAll, describe, expect, it } from "vitest"
import { Proc, repoRoot, tempDir, waitFor } from "./support/processes.js"

const packages = ["core", "sqlite", "http", "server", "cli", "testkit"] as const

// effect and the @effect/* peers, at the ranges of STACK.md (what an application would install).
const peers = {
  effect: "^3.22.4",
  "@effect/experimental": "^0.61.1",
  "@effect/platform": "^0.97.2",
  "@effect/platform-node": "^0.108.2",
  "@effect/sql": "^0.52.1",
  "@effect/sql-pg": "^0.53.0",
  "@effect/sql-sqlite-node": "^0.53.0",
  // @autosync/testkit's peers: an application that tests its own backend has them.
  "@effect/vitest": "^0.30.0",
  vitest: "^3.2.4"
}

const box = tempDir("packaging")
const procs: Array<Proc> = []

// A clean environment for npm: none of the npm_*/pnpm settings `pnpm test` passes to its scripts, nor vitest's own
// (they would steer the install). node-gyp gets Node's headers rather than a download.
const env = (): Record<string, string> => {
  const clean: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !/^(npm_|pnpm_|vitest)/i.test(key)) clean[key] = value
  }
  clean.NO_COLOR = "1"
  if (existsSync("/usr/include/node/node.h")) clean.npm_config_nodedir = process.env.npm_config_nodedir ?? "/usr"
  clean.npm_config_jobs = "max" // node-gyp: better-sqlite3's two compile units in parallel
  return clean
}

const start = (
  name: string,
  command: string,
  args: ReadonlyArray<string>,
  cwd: string,
  extraEnv: Record<string, string> = {}
) => {
  const proc = new Proc(
    name,
    spawn(command, [...args], { cwd, env: { ...env(), ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] })
  )
  procs.push(proc)
  return proc
}

/** Runs a command to completion; fails with its output on a non-zero exit or after `timeoutMs`. */
const run = async (
  command: string,
  args: ReadonlyArray<string>,
  cwd: string,
  options: { readonly timeoutMs?: number; readonly env?: Record<string, string> } = {}
) => {
  const timeoutMs = options.timeoutMs ?? 60_000
  const proc = start(`${command} ${args.slice(0, 2).join(" ")}`, command, args, cwd, options.env)
  const outcome = await proc.finish(timeoutMs, 60)
  if (outcome.code !== 0) throw new Error(`${proc.name} failed\n${proc.describe(60)}`)
  return proc.stdout
}

interface NpmNode {
  readonly version?: string
  readonly resolved?: string
  readonly path?: string
  readonly dependencies?: Record<string, NpmNode>
}

/** Every node named `name` in `npm ls --json --long` output, wherever it is in the tree. */
const nodesNamed = (tree: NpmNode, name: string): Array<NpmNode> =>
  Object.entries(tree.dependencies ?? {}).flatMap(([key, node]) => [
    ...(key === name ? [node] : []),
    ...nodesNamed(node, name)
  ])

const started = Date.now()
const step = (what: string) => console.log(`[e2e packaging ${((Date.now() - started) / 1000).toFixed(0)} s] ${what}`)

afterAll(async () => {
  await Promise.all(procs.map((p) => p.kill("SIGKILL")))
  box.remove()
})

describe("packaging", () => {
  it(
    "the packed packages install with npm in a fresh application, with one effect, and the embedding example syncs two replicas through the installed CLI's server",
    async () => {
      for (const pkg of [...packages.map((p) => `packages/${p}/dist/index.js`), "packages/cli/dist/bundle/bin.js"]) {
        if (!existsSync(join(repoRoot, pkg))) throw new Error(`${pkg} is missing: run \`pnpm build\` first`)
      }
      const tarballs = box.file("tarballs")
      const app = box.file("app")
      mkdirSync(tarballs)
      mkdirSync(app)

      step("pnpm pack")
      // 1. The tarballs, as `pnpm publish` would upload them.
      const files: Record<string, string> = {}
      for (const pkg of packages) {
        const out = await run("pnpm", ["pack", "--pack-destination", tarballs], join(repoRoot, "packages", pkg))
        const tgz = out.trim().split("\n").pop()!.trim()
        expect(tgz).toMatch(new RegExp(`autosync-${pkg}-[0-9.]+\\.tgz$`))
        files[`@autosync/${pkg}`] = `file:${tgz}`
      }
      const manifest = (pkg: string) =>
        JSON.parse(
          readFileSync(join(app, "node_modules", "@autosync", pkg, "package.json"), "utf8")
        ) as Record<string, any>

      step("npm install")
      // 2. A fresh application: the tarballs and the peers. The overrides make every @autosync/*
      // dependency of the tarballs resolve to a tarball too, never to the registry.
      writeFileSync(
        join(app, "package.json"),
        JSON.stringify(
          {
            name: "autosync-packaging-app",
            private: true,
            type: "module",
            dependencies: { ...files, ...peers },
            overrides: Object.fromEntries(Object.keys(files).map((name) => [name, `$${name}`]))
          },
          null,
          2
        )
      )
      await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], app, {
        timeoutMs: 300_000
      })

      step("checking the manifests")
      // 3. The installed manifests: versions instead of workspace:*, no `source` condition, peers.
      for (const pkg of packages) {
        const json = manifest(pkg)
        expect(JSON.stringify(json)).not.toContain("workspace:")
        expect(JSON.stringify(json.exports)).not.toContain("source")
        for (const entry of Object.values(json.exports) as Array<{ types: string; default: string }>) {
          expect(existsSync(join(app, "node_modules", "@autosync", pkg, entry.types))).toBe(true)
          expect(existsSync(join(app, "node_modules", "@autosync", pkg, entry.default))).toBe(true)
        }
        if (pkg !== "cli") {
          expect(json.peerDependencies.effect).toBe(peers.effect)
          expect(Object.keys(json.dependencies ?? {}).filter((d) => !d.startsWith("@autosync/"))).toEqual([])
        }
      }
      // The CLI runs from its bundle: without the unbundled entry, anything else would fail.
      expect(existsSync(join(app, "node_modules/@autosync/cli/dist/bundle/bin.js"))).toBe(true)
      rmSync(join(app, "node_modules/@autosync/cli/dist/bin.js"))

      step("npm ls")
      // 4. One copy of effect in the whole tree, and every @autosync/* from a tarball.
      const tree = JSON.parse(await run("npm", ["ls", "--all", "--json", "--long"], app)) as NpmNode
      const effects = nodesNamed(tree, "effect")
      expect(new Set(effects.map((n) => n.path))).toEqual(new Set([join(app, "node_modules", "effect")]))
      expect(effects[0].version).toMatch(/^3\./)
      for (const name of Object.keys(files)) {
        const nodes = nodesNamed(tree, name)
        expect(nodes.length).toBeGreaterThan(0)
        for (const node of nodes) expect(node.resolved, name).toMatch(/^file:/)
      }

      // 5. The README's example exactly as written (examples/embed.ts), its types stripped.
      const source = readFileSync(join(repoRoot, "examples/embed.ts"), "utf8")
      const js = ts.transpileModule(source, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 }
      }).outputText
      writeFileSync(join(app, "embed.mjs"), js)

      step("the example against the installed CLI's server")
      // 6. A server from the installed CLI, a token, and the example on two replica files.
      const autosync = join(app, "node_modules/.bin/autosync")
      const server = start("autosync serve", process.execPath, [
        autosync,
        "serve",
        "--db",
        join(app, "server.db"),
        "--port",
        "0"
      ], app)
      const url = await waitFor("the installed server to listen", 60_000, () => {
        if (!server.running) throw new Error(`the server exited\n${server.describe()}`)
        return /listening on (http:\/\/[0-9.]+:\d+)/.exec(server.stdout)?.[1]
      }, { diagnostics: () => server.describe() })
      const created = await run(process.execPath, [
        autosync,
        "token",
        "create",
        "--db",
        join(app, "server.db"),
        "--project",
        "notes"
      ], app)
      const token = created.trim().split("\n").pop()!.trim()

      // Each run must exit by itself: `run` fails after 60 s otherwise.
      const embed = async (file: string) => {
        const out = await run(process.execPath, ["embed.mjs", file], app, {
          env: { AUTOSYNC_SERVER_URL: url, AUTOSYNC_TOKEN: token }
        })
        return new Map(
          out.trim().split("\n").map((line) => {
            const space = line.indexOf(" ")
            return [line.slice(0, space), JSON.parse(line.slice(space + 1))] as const
          })
        )
      }
      const laptop = await embed("laptop.db")
      expect(laptop.get("laptop.db")).toEqual({ title: "Hello from laptop.db" })
      const phone = await embed("phone.db")
      expect(phone.get("laptop.db")).toEqual({ title: "Hello from laptop.db" }) // written on the other replica
      expect(phone.get("phone.db")).toEqual({ title: "Hello from phone.db" })

      // 7. The installed CLI reads the second replica too.
      const listed = await run(
        process.execPath,
        [autosync, "list", "notes", "--db", join(app, "phone.db"), "--json"],
        app
      )
      expect(JSON.parse(listed)).toContainEqual({
        entity: "note",
        key: "laptop.db",
        value: { title: "Hello from laptop.db" }
      })
      await server.stop()

      step("the application's vitest runs @autosync/testkit's LocalStore suite")
      // 8. A user testing their own LocalStore: the suite from the installed testkit, run by the
      // application's own vitest (here against the memory store), and the test tools' entry point.
      writeFileSync(
        join(app, "store.test.mjs"),
        [
          `import { LocalStore } from "@autosync/core"`,
          `import { FaultyTransport } from "@autosync/core/testing"`,
          `import { LocalStoreSuite } from "@autosync/testkit"`,
          `import { expect, it } from "vitest"`,
          `LocalStoreSuite("my store", LocalStore.layerMemory)`,
          `it("the test tools are behind @autosync/core/testing", () => {`,
          `  expect(typeof FaultyTransport.wrap).toBe("function")`,
          `})`
        ].join("\n")
      )
      const tested = await run(
        process.execPath,
        [
          join(app, "node_modules/vitest/vitest.mjs"),
          "run",
          "store.test.mjs",
          "--reporter=verbose"
        ],
        app,
        { timeoutMs: 120_000, env: { CI: "1" } }
      )
      expect(tested).toContain("LocalStore contract: my store")
      expect(tested).toMatch(/Tests\s+\d+ passed/)
      step("done")
    },
    420_000
  )
})
