/**
 * Bearer tokens, each allowed a set of projects. `create` returns the token in plaintext: that is
 * the only time it is ever seen, because only its SHA-256 is stored (in `autosync_tokens`, in
 * the same database as the log). `verify` maps a presented token back to its projects.
 *
 * A token is `as_` followed by 32 random bytes (from the operating system's CSPRNG) in
 * base64url, so it is long enough that an unsalted hash is safe to keep.
 *
 * Each token also has a public id (`tok_` and the first 12 hex digits of its hash: it tells
 * nothing about the token) by which `list` shows it and `revoke` deletes it, and the time it was
 * last used, recorded by `verify` at most once per {@link lastUsedResolution} per token.
 *
 * An admin token (`create(projects, { admin: true })`, `autosync token create --admin`) may also
 * read the admin endpoints (`/v1/admin/*`, the dashboard's data). Besides that it is an ordinary
 * token: it may push and pull its projects, and it may have none (then it can only administer).
 *
 * @since 0.1.0
 */
import { Mutation } from "@autosync/core"
import type * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
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
 * - `invalid_projects`: `create` got no project (an admin token may have none) or a malformed one.
 * - `not_found`: `revoke` got an id no token has.
 * - `storage`: the database failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class TokensError extends Schema.TaggedError<TokensError>()("TokensError", {
  reason: Schema.Literal("unknown_token", "invalid_projects", "not_found", "storage"),
  message: Schema.String,
  cause: Schema.optionalWith(Schema.Defect, { exact: true })
}) {}

/**
 * What `list` tells about a token (never the token itself, nor its hash).
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenInfo {
  readonly id: string
  readonly projects: ReadonlyArray<string>
  /** Whether it may read the admin endpoints. */
  readonly admin: boolean
  readonly createdAt: Date
  /** When a server last accepted it (to within {@link lastUsedResolution}); `undefined` if never. */
  readonly lastUsedAt: Date | undefined
}

/**
 * What a verified token grants: its public id, its projects, and whether it is an admin token.
 *
 * @since 0.1.0
 * @category models
 */
export interface Grant {
  readonly id: string
  readonly projects: ReadonlyArray<string>
  readonly admin: boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export interface CreateOptions {
  /** An admin token may read the admin endpoints; it may have no project. Defaults to false. */
  readonly admin?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Tokens extends Context.Tag("@autosync/server/Tokens")<Tokens, {
  /** A new token for these projects, in plaintext: show it once, it cannot be read back. Its id is `idOf(token)`. */
  readonly create: (projects: ReadonlyArray<string>, options?: CreateOptions) => Effect.Effect<string, TokensError>
  /**
   * The projects a token may use; `unknown_token` when it is missing, unknown or revoked. Records
   * the token's last use when the recorded one is older than {@link lastUsedResolution}.
   */
  readonly verify: (token: Redacted.Redacted | string) => Effect.Effect<ReadonlyArray<string>, TokensError>
  /** What the token grants (id, projects, admin); fails and records its use as `verify` does. */
  readonly grant: (token: Redacted.Redacted | string) => Effect.Effect<Grant, TokensError>
  /** Every token, oldest first. */
  readonly list: Effect.Effect<ReadonlyArray<TokenInfo>, TokensError>
  /**
   * Deletes the token with this id and returns what it was; `not_found` when there is none. A
   * server that verified it less than its cache period ago (10 s) still accepts it until then.
   */
  readonly revoke: (id: string) => Effect.Effect<TokenInfo, TokensError>
}>() {}

/**
 * How precisely the last use is recorded: `verify` writes it at most once per token and
 * this period, so a busy token does not cost a write per request.
 *
 * @since 0.1.0
 * @category constants
 */
export const lastUsedResolution: Duration.Duration = Duration.seconds(10)

/**
 * The stored form of a token: its SHA-256, in hex.
 *
 * @since 0.1.0
 * @category constructors
 */
export const hash = (token: string): string => createHash("sha256").update(token, "utf8").digest("hex")

/**
 * A token's public id: `tok_` and the first 12 hex digits of its {@link hash}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const idOf = (token: string): string => idOfHash(hash(token))

const idOfHash = (tokenHash: string) => `tok_${tokenHash.slice(0, 12)}`

/**
 * A fresh random token.
 *
 * @since 0.1.0
 * @category constructors
 */
export const generate: Effect.Effect<string> = Effect.sync(() => `as_${randomBytes(32).toString("base64url")}`)

const ValidProjects = Schema.NonEmptyArray(Mutation.Project)

const validate = (projects: ReadonlyArray<string>, options?: CreateOptions) =>
  projects.length === 0 && options?.admin === true
    ? Effect.succeed([])
    : projects.length === 0
    ? Effect.fail(new TokensError({ reason: "invalid_projects", message: "a token needs at least one project" }))
    : Schema.decodeUnknown(ValidProjects)(projects).pipe(
      Effect.map((ps) => [...new Set(ps)]),
      Effect.mapError((e) =>
        new TokensError({
          reason: "invalid_projects",
          // The first problem, in the words of the rule (e.g. "project must not be empty").
          message: ParseResult.ArrayFormatter.formatErrorSync(e)[0]?.message ?? "invalid project"
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

const notFound = (id: string) => new TokensError({ reason: "not_found", message: `no token ${JSON.stringify(id)}` })

// PostgreSQL returns BIGINT columns as strings, SQLite as numbers.
const Millis = Schema.Union(Schema.Number, Schema.NumberFromString)
const Projects = Schema.parseJson(Schema.Array(Schema.String))
const VerifyRow = Schema.Struct({
  id: Schema.String,
  projects: Projects,
  admin: Schema.Union(Schema.Number, Schema.NumberFromString, Schema.Boolean),
  last_used_at: Schema.NullOr(Millis)
})
const decodeVerifyRows = Schema.decodeUnknown(Schema.Array(VerifyRow))
const InfoRow = Schema.Struct({
  id: Schema.String,
  projects: Projects,
  admin: Schema.Union(Schema.Number, Schema.NumberFromString, Schema.Boolean),
  created_at: Millis,
  last_used_at: Schema.NullOr(Millis)
})
const decodeInfoRows = Schema.decodeUnknown(Schema.Array(InfoRow))
const toInfo = (row: typeof InfoRow.Type): TokenInfo => ({
  id: row.id,
  projects: row.projects,
  admin: Boolean(row.admin),
  createdAt: new Date(row.created_at),
  lastUsedAt: row.last_used_at === null ? undefined : new Date(row.last_used_at)
})

const isStale = (lastUsedAt: number | null | undefined, now: number) =>
  lastUsedAt === null || lastUsedAt === undefined || now - lastUsedAt >= Duration.toMillis(lastUsedResolution)

/**
 * Tokens in the `SqlClient`'s database.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Tokens["Type"], never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const select = sql`SELECT id, projects, admin, created_at, last_used_at FROM autosync_tokens`
  const grant = (presented: Redacted.Redacted | string) =>
    Effect.gen(function*() {
      const token = typeof presented === "string" ? presented : Redacted.value(presented)
      if (token.length === 0) return yield* unknownToken(token)
      const tokenHash = hash(token)
      const rows =
        yield* sql`SELECT id, projects, admin, last_used_at FROM autosync_tokens WHERE token_hash = ${tokenHash}`
          .pipe(Effect.flatMap(decodeVerifyRows), Effect.mapError(storage))
      if (rows.length === 0) return yield* unknownToken(token)
      const now = yield* Clock.currentTimeMillis
      if (isStale(rows[0].last_used_at, now)) {
        // Bookkeeping only: a failed write must not refuse a valid token.
        yield* sql`UPDATE autosync_tokens SET last_used_at = ${now} WHERE token_hash = ${tokenHash}`.pipe(
          Effect.catchAll((e) => Effect.logWarning(`could not record a token's last use: ${e.message}`))
        )
      }
      return { id: rows[0].id, projects: rows[0].projects, admin: Boolean(rows[0].admin) }
    })
  return Tokens.of({
    create: (projects, options) =>
      Effect.gen(function*() {
        const valid = yield* validate(projects, options)
        const token = yield* generate
        const createdAt = yield* Clock.currentTimeMillis
        const tokenHash = hash(token)
        yield* sql`INSERT INTO autosync_tokens ${
          sql.insert({
            token_hash: tokenHash,
            id: idOfHash(tokenHash),
            projects: JSON.stringify(valid),
            admin: options?.admin === true ? 1 : 0,
            created_at: createdAt
          })
        }`.pipe(Effect.mapError(storage))
        return token
      }),
    verify: (presented) => Effect.map(grant(presented), (g) => g.projects),
    grant,
    list: sql`${select} ORDER BY created_at, id`.pipe(
      Effect.flatMap(decodeInfoRows),
      Effect.map((rows) => rows.map(toInfo)),
      Effect.mapError(storage)
    ),
    revoke: (id) =>
      Effect.gen(function*() {
        const rows = yield* sql`${select} WHERE id = ${id}`.pipe(
          Effect.flatMap(decodeInfoRows),
          Effect.mapError(storage)
        )
        if (rows.length === 0) return yield* notFound(id)
        yield* sql`DELETE FROM autosync_tokens WHERE id = ${id}`.pipe(Effect.mapError(storage))
        return toInfo(rows[0])
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
  SqlError | SqliteMutationLog.ServerFileError | Migrator.MigrationError
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
  const byHash = new Map<
    string,
    { projects: ReadonlyArray<string>; admin: boolean; createdAt: number; lastUsedAt?: number }
  >()
  const info = (tokenHash: string): TokenInfo => {
    const entry = byHash.get(tokenHash)!
    return {
      id: idOfHash(tokenHash),
      projects: entry.projects,
      admin: entry.admin,
      createdAt: new Date(entry.createdAt),
      lastUsedAt: entry.lastUsedAt === undefined ? undefined : new Date(entry.lastUsedAt)
    }
  }
  const grant = (presented: Redacted.Redacted | string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<Grant, TokensError> => {
      const token = typeof presented === "string" ? presented : Redacted.value(presented)
      const tokenHash = hash(token)
      const entry = token.length === 0 ? undefined : byHash.get(tokenHash)
      if (entry === undefined) return Effect.fail(unknownToken(token))
      if (isStale(entry.lastUsedAt, now)) entry.lastUsedAt = now
      return Effect.succeed({ id: idOfHash(tokenHash), projects: entry.projects, admin: entry.admin })
    })
  return Tokens.of({
    create: (projects, options) =>
      Effect.gen(function*() {
        const valid = yield* validate(projects, options)
        const token = yield* generate
        byHash.set(hash(token), {
          projects: valid,
          admin: options?.admin === true,
          createdAt: yield* Clock.currentTimeMillis
        })
        return token
      }),
    verify: (presented) => Effect.map(grant(presented), (g) => g.projects),
    grant,
    list: Effect.sync(() =>
      [...byHash.keys()].map(info).sort((a, b) =>
        a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
      )
    ),
    revoke: (id) =>
      Effect.suspend(() => {
        const tokenHash = [...byHash.keys()].find((h) => idOfHash(h) === id)
        if (tokenHash === undefined) return Effect.fail(notFound(id))
        const revoked = info(tokenHash)
        byHash.delete(tokenHash)
        return Effect.succeed(revoked)
      })
  })
})
