/**
 * The local PostgreSQL for tests: `AUTOSYNC_TEST_PG_URL` (default
 * `postgres://postgres@127.0.0.1:5432/test`). When it cannot be reached the PostgreSQL tests are
 * skipped with a warning, unless `CI=true`, where that is a failure. Every user gets a fresh schema
 * (`autosync_test_<random>`), set as the connections' search_path and dropped afterwards.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted } from "effect"
import { randomUUID } from "node:crypto"

export const pgUrl = process.env.AUTOSYNC_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test"

const withAdmin = <A, E>(f: (sql: PgClient.PgClient) => Effect.Effect<A, E>) =>
  Effect.scoped(
    Effect.flatMap(
      Layer.build(PgClient.layer({ url: Redacted.make(pgUrl), maxConnections: 1, connectTimeout: "3 seconds" })),
      (context) => f(Context.get(context, PgClient.PgClient))
    )
  )

export const pgAvailable: boolean = await Effect.runPromise(
  withAdmin((sql) => sql`SELECT 1`).pipe(Effect.as(true), Effect.catchAllCause(() => Effect.succeed(false)))
)

/** `describe`, or a visible skip when PostgreSQL is not reachable (a failure under CI=true). */
export const describePg = (name: string, body: () => void) => {
  if (pgAvailable) return describe(name, body)
  const where = pgUrl.replace(/:\/\/[^@]*@/, "://…@")
  if (process.env.CI === "true") {
    return describe(name, () => {
      it("PostgreSQL is reachable", () => {
        throw new Error(`PostgreSQL is not reachable at ${where} (CI=true: the PostgreSQL tests must run)`)
      })
    })
  }
  console.warn(`⚠ skipping "${name}": PostgreSQL is not reachable at ${where} (set AUTOSYNC_TEST_PG_URL)`)
  return describe.skip(name, body)
}

/** The URL of `pgUrl` with `search_path` set to `schema`. */
export const schemaUrl = (schema: string) => {
  const url = new URL(pgUrl)
  url.searchParams.set("options", `-c search_path=${schema}`)
  return url.toString()
}

/** A fresh schema, dropped (with everything in it) when the scope closes. */
export const freshSchema = Effect.acquireRelease(
  Effect.gen(function*() {
    const name = `autosync_test_${randomUUID().replaceAll("-", "").slice(0, 16)}`
    yield* withAdmin((sql) => sql`CREATE SCHEMA ${sql(name)}`)
    return name
  }).pipe(Effect.orDie),
  (name) => withAdmin((sql) => sql`DROP SCHEMA ${sql(name)} CASCADE`).pipe(Effect.orDie)
)

/** A `PgClient` whose connections use `schema`. */
export const layerClient = (schema: string, maxConnections = 4) =>
  PgClient.layer({ url: Redacted.make(schemaUrl(schema)), maxConnections })
