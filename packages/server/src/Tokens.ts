/**
 * Bearer tokens, each allowed a set of projects. `create` returns the token in plaintext: that is
 * the only time it is ever seen, because only its SHA-256 is stored (in `autosync_tokens`, in
 * the same database as the log). `verify` maps a presented token back to its projects.
 *
 * A token is `as_` followed by 32 random bytes (from the operating system's CSPRNG) in
 * base64url, so it is long enough that an unsalted hash is safe to keep.
 *
 * @since 0.1.0
 */
import { Mutation } from "@autosync/core"
import type * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { createHash, randomBytes } from "node:crypto"
import * as Migrations from "./internal/migrations.js"
import * as PgMutationLog from "./PgMutationLog.js"
import * as SqliteMutationLog from "./SqliteMutationLog.js"

/**
 * A failed token operation.
 * - `unknown_token`: no token, or one that was never created (the server answers 401).
 * - `invalid_projects`: `create` got no project or a malformed one.
 * - `storage`: the database failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class TokensError extends Schema.TaggedError<TokensError>()("TokensError", {
  reason: Schema.Literal("unknown_token", "invalid_projects", "storage"),
  message: Schema.String,
  cause: Schema.optionalWith(Schema.Defect, { exact: true })
}) {}

/**
 * @since 0.1.0
 * @category tags
 */
export class Tokens extends Context.Tag("@autosync/server/Tokens")<Tokens, {
  /** A new token for these projects, in plaintext: show it once, it cannot be read back. */
  readonly create: (projects: ReadonlyArray<string>) => Effect.Effect<string, TokensError>
  /** The projects a token may use; `unknown_token` when it is missing or unknown. */
  readonly verify: (token: Redacted.Redacted | string) => Effect.Effect<ReadonlyArray<string>, TokensError>
}>() {}

/**
 * The stored form of a token: its SHA-256, in hex.
 *
 * @since 0.1.0
 * @category constructors
 */
export const hash = (token: string): string => createHash("sha256").update(token, "utf8").digest("hex")

/**
 * A fresh random token.
 *
 * @since 0.1.0
 * @category constructors
 */
export const generate: Effect.Effect<string> = Effect.sync(() => `as_${randomBytes(32).toString("base64url")}`)

const Projects = Schema.NonEmptyArray(Mutation.Project)

const validate = (projects: ReadonlyArray<string>) =>
  Schema.decodeUnknown(Projects)(projects).pipe(
    Effect.map((ps) => [...new Set(ps)]),
    Effect.mapError((e) =>
      new TokensError({
        reason: "invalid_projects",
        message: `a token needs at least one valid project: ${ParseResult.TreeFormatter.formatErrorSync(e)}`
      })
    )
  )

const unknownToken = (token: string) =>
  new TokensError({
    reason: "unknown_token",
    message: token.length === 0 ? "missing bearer token" : "unknown bearer token"
  })

const storage = (cause: SqlError | ParseResult.ParseError) =>
  new TokensError({ reason: "storage", message: `token storage failed: ${cause.message}`, cause })

const TokenRow = Schema.Struct({ projects: Schema.parseJson(Schema.Array(Schema.String)) })
const decodeRows = Schema.decodeUnknown(Schema.Array(TokenRow))

/**
 * Tokens in the `SqlClient`'s database.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Tokens["Type"], never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return Tokens.of({
    create: (projects) =>
      Effect.gen(function*() {
        const valid = yield* validate(projects)
        const token = yield* generate
        const createdAt = yield* Clock.currentTimeMillis
        yield* sql`INSERT INTO autosync_tokens ${
          sql.insert({ token_hash: hash(token), projects: JSON.stringify(valid), created_at: createdAt })
        }`.pipe(Effect.mapError(storage))
        return token
      }),
    verify: (presented) =>
      Effect.gen(function*() {
        const token = typeof presented === "string" ? presented : Redacted.value(presented)
        if (token.length === 0) return yield* unknownToken(token)
        const rows = yield* sql`SELECT projects FROM autosync_tokens WHERE token_hash = ${hash(token)}`.pipe(
          Effect.flatMap(decodeRows),
          Effect.mapError(storage)
        )
        if (rows.length === 0) return yield* unknownToken(token)
        return rows[0].projects
      })
  })
})

/**
 * Tokens in the `SqlClient`'s database (SQLite or PostgreSQL); runs the server's migrations first.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Tokens, SqlError | Migrator.MigrationError, SqlClient.SqlClient> = Layer.effect(
  Tokens,
  make
).pipe(Layer.provide(Migrations.layer))

/**
 * Tokens in a SQLite file (what `autosync token create --db FILE` uses).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSqlite = (options: { readonly file: string }): Layer.Layer<
  Tokens,
  SqlError | ConfigError.ConfigError | Migrator.MigrationError
> => layer.pipe(Layer.provide(SqliteMutationLog.layerClient(options)))

/**
 * Tokens in a PostgreSQL database (what `autosync token create --database-url URL` uses).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPg = (options: { readonly url: Redacted.Redacted | string }): Layer.Layer<
  Tokens,
  SqlError | Migrator.MigrationError
> => layer.pipe(Layer.provide(PgMutationLog.layerClient({ ...options, maxConnections: 2 })))

/**
 * Tokens in memory, for tests.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<Tokens> = Layer.sync(Tokens, () => {
  const byHash = new Map<string, ReadonlyArray<string>>()
  return Tokens.of({
    create: (projects) =>
      Effect.gen(function*() {
        const valid = yield* validate(projects)
        const token = yield* generate
        byHash.set(hash(token), valid)
        return token
      }),
    verify: (presented) =>
      Effect.suspend(() => {
        const token = typeof presented === "string" ? presented : Redacted.value(presented)
        const projects = token.length === 0 ? undefined : byHash.get(hash(token))
        return projects === undefined ? Effect.fail(unknownToken(token)) : Effect.succeed(projects)
      })
  })
})
