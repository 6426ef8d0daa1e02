#!/usr/bin/env node
// A committed shim, so a fresh clone can link the bin before anything is built.
//
// It loads the bundle (dist/bundle/bin.js, made by `pnpm build`): a few files instead of the
// ~1,000 modules of dist/bin.js and effect, which is most of a command's start-up time. In a
// checkout, a bundle older than the last `tsc -b` of any package is stale: then it runs
// dist/bin.js (slower, but the code just built). An installed package has no build/ folders, so
// it always takes the bundle.
//
// Source maps (stack traces naming the TypeScript sources) cost ~0.15 s at start-up in Node 20,
// so they are on for the long-running commands and for AUTOSYNC_LOG_LEVEL=debug only.
import { statSync } from "node:fs"

const here = new URL("..", import.meta.url)
const mtime = (path) => {
  try {
    return statSync(new URL(path, here)).mtimeMs
  } catch {
    return undefined
  }
}

const bundle = mtime("dist/bundle/bin.js")
const lastBuild = Math.max(
  0,
  ...["cli", "core", "sqlite", "http", "server"].map((pkg) => mtime(`../${pkg}/build/src.tsbuildinfo`) ?? 0)
)
const entry = bundle !== undefined && bundle >= lastBuild ? "../dist/bundle/bin.js" : "../dist/bin.js"

const longRunning = ["serve", "agent", "demo"]
if (process.env.AUTOSYNC_LOG_LEVEL === "debug" || process.argv.slice(2).some((arg) => longRunning.includes(arg))) {
  process.setSourceMapsEnabled(true)
}

import(entry).catch((error) => {
  if (error && error.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes("dist/bin.js")) {
    console.error("autosync is not built yet: run `pnpm build` in the repository root first.")
    process.exit(1)
  }
  throw error
})
