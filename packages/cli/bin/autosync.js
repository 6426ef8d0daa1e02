#!/usr/bin/env node
// A committed shim, so a fresh clone can link the bin before anything is built.
import("../dist/bin.js").catch((error) => {
  if (error && error.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes("dist/bin.js")) {
    console.error("autosync is not built yet: run `pnpm build` in the repository root first.")
    process.exit(1)
  }
  throw error
})
