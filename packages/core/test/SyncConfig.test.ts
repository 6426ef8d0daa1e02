import { SyncConfig } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect } from "effect"

describe("SyncConfig", () => {
  it.effect("fills the documented defaults", () =>
    Effect.gen(function*() {
      const config = yield* SyncConfig.make()
      assert.strictEqual(config.targetKey, "cloud")
      assert.match(config.leaseOwner, /^worker-/)
      assert.strictEqual(Duration.toMillis(config.leaseInterval), 60_000)
      assert.strictEqual(Duration.toMillis(config.debounce), 500)
      assert.strictEqual(Duration.toMillis(config.debounceMaxWait), 5_000)
      assert.strictEqual(Duration.toMillis(config.pollInterval), 30_000)
      assert.strictEqual(config.pushBatchSize, 100)
      assert.strictEqual(config.pullBatchSize, 100)
      assert.strictEqual(config.maxConsecutiveFailures, 10)
      assert.strictEqual(Duration.toMillis(config.baseBackoff), 1_000)
      assert.strictEqual(Duration.toMillis(config.maxBackoff), 300_000)
    }))

  it.effect("refuses nonsense with a ConfigError naming the field", () =>
    Effect.gen(function*() {
      const cases: Array<[SyncConfig.Input, RegExp]> = [
        [{ pushBatchSize: 0 }, /pushBatchSize must be a positive integer/],
        [{ pullBatchSize: -1 }, /pullBatchSize/],
        [{ pushBatchSize: 1.5 }, /pushBatchSize/],
        [{ baseBackoff: "10 minutes", maxBackoff: "1 minute" }, /baseBackoff .* must not exceed maxBackoff/],
        [{ pollInterval: 0 }, /pollInterval must be a positive/],
        [{ debounce: "2 seconds", debounceMaxWait: "1 second" }, /debounceMaxWait/],
        [{ targetKey: "" }, /targetKey/],
        [{ leaseInterval: Duration.infinity }, /leaseInterval/]
      ]
      for (const [input, message] of cases) {
        const error = yield* Effect.flip(SyncConfig.make(input))
        assert.match(String(error), message)
      }
    }))

  it.effect("reads AUTOSYNC_* from the environment; overrides win", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromMap(
        new Map([
          ["AUTOSYNC_DEBOUNCE", "50 millis"],
          ["AUTOSYNC_PUSH_BATCH_SIZE", "1000"],
          ["AUTOSYNC_LEASE_OWNER", "env-owner"]
        ]),
        { pathDelim: "_" }
      )
      const config = yield* SyncConfig.fromEnv({ pullBatchSize: 7 }).pipe(Effect.withConfigProvider(provider))
      assert.strictEqual(Duration.toMillis(config.debounce), 50)
      assert.strictEqual(config.pushBatchSize, 1000)
      assert.strictEqual(config.pullBatchSize, 7)
      assert.strictEqual(config.leaseOwner, "env-owner")
      const bad = yield* Effect.flip(
        SyncConfig.fromEnv().pipe(
          Effect.withConfigProvider(
            ConfigProvider.fromMap(new Map([["AUTOSYNC_PUSH_BATCH_SIZE", "lots"]]), { pathDelim: "_" })
          )
        )
      )
      assert.match(String(bad), /PUSH_BATCH_SIZE/)
    }))
})
