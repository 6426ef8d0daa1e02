import { defineConfig } from "vitest/config"

export default defineConfig({
  // Resolve workspace packages to their TypeScript sources, so tests never need a build first.
  ssr: { resolve: { conditions: ["source", "module", "node", "development|production"] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fakeTimers: { toFake: undefined }
  }
})
