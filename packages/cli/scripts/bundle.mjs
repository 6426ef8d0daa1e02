// Bundles the built CLI (dist/bin.js, from `tsc -b`) and everything it imports into
// dist/bundle/, so `autosync` starts by loading a few files instead of the ~1,000 ESM modules of
// effect and @effect/* (about 0.1 s instead of 0.5 s). The server and the demo stay separate
// chunks, loaded only by the commands that use them (code splitting of the dynamic imports).
// Native and optional drivers stay external: they resolve from this package's node_modules.
// Run by the root `pnpm build`, after tsc; bin/autosync.js loads the result.
import { build } from "esbuild"
import { rmSync } from "node:fs"
import { fileURLToPath } from "node:url"

const pkg = fileURLToPath(new URL("..", import.meta.url))
const outdir = `${pkg}dist/bundle`
rmSync(outdir, { recursive: true, force: true })

const result = await build({
  absWorkingDir: pkg,
  entryPoints: { bin: "dist/bin.js" },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // Native addons and drivers the bundle must not inline (pg-native is pg's optional binding;
  // bufferutil/utf-8-validate are ws's optional accelerators).
  external: ["better-sqlite3", "pg", "pg-native", "bufferutil", "utf-8-validate"],
  // CommonJS dependencies bundled into ESM still call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __autosyncCreateRequire } from \"node:module\";\n" +
      "const require = __autosyncCreateRequire(import.meta.url);"
  },
  // Stack traces name the TypeScript sources (the input maps of tsc and effect are followed);
  // the map carries no sources' text, to keep it small.
  sourcemap: "linked",
  sourcesContent: false,
  chunkNames: "chunks/[name]-[hash]",
  logLevel: "warning",
  metafile: true
})
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0)
console.log(`bundled the CLI into ${outdir} (${(bytes / 1024 / 1024).toFixed(1)} MiB with maps)`)
