/**
 * Where `serve` and `token` keep the server's data: a SQLite file (default
 * `./autosync-server.db`) or a PostgreSQL database. The server package loads only when a command
 * needs it (a dynamic import), so the other commands start without it.
 *
 * @since 0.1.0
 */
import type { Tokens } from "@autosync/server"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as CliError from "./CliError.js"

/**
 * @since 0.1.0
 * @category models
 */
export type Where =
  | { readonly _tag: "sqlite"; readonly file: string }
  | { readonly _tag: "pg"; readonly url: Redacted.Redacted }

/**
 * The server package, loaded on first use.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = Effect.promise(() => import("@autosync/server"))

/**
 * `--db` or `--database-url` (not both); the default file otherwise.
 *
 * @since 0.1.0
 * @category constructors
 */
export const choose = (
  db: Option.Option<string>,
  url: Option.Option<Redacted.Redacted>
): Effect.Effect<Where, CliError.CliError> =>
  Option.isSome(db) && Option.isSome(url)
    ? Effect.fail(CliError.usage("give either --db or --database-url, not both"))
    : Effect.succeed(
      Option.match(url, {
        onNone: () => ({ _tag: "sqlite" as const, file: Option.getOrElse(db, () => "./autosync-server.db") }),
        onSome: (u) => ({ _tag: "pg" as const, url: u })
      })
    )

/**
 * How the store is named in messages.
 *
 * @since 0.1.0
 * @category constructors
 */
export const describe = (where: Where): string => where._tag === "sqlite" ? where.file : "PostgreSQL"

/**
 * Runs `effect`; when it fails and the database file did not exist before, removes it and its
 * companions (`-wal`, `-shm`, `-journal`): a command that failed leaves no new database behind,
 * not after a busy port nor after bad input. The companions of a file that existed are left to
 * SQLite (another process may be using them).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withoutLeftovers = <A, E, R>(
  where: Where,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R | FileSystem.FileSystem> =>
  where._tag === "pg" ? effect : Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const file = where.file
    if (yield* Effect.orElseSucceed(fs.exists(file), () => true)) return yield* effect
    return yield* Effect.tapErrorCause(effect, (cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.void
        : Effect.forEach(
          [file, `${file}-wal`, `${file}-shm`, `${file}-journal`],
          (path) => Effect.ignore(fs.remove(path)),
          { discard: true }
        ))
  })

/**
 * Fails (exit code 3) when the SQLite file is missing: commands that only read tokens must not
 * create a server database.
 *
 * @since 0.1.0
 * @category constructors
 */
export const requireExisting = (where: Where): Effect.Effect<void, CliError.CliError, FileSystem.FileSystem> =>
  where._tag === "pg" ? Effect.void : Effect.flatMap(
    FileSystem.FileSystem,
    (fs) =>
      Effect.flatMap(Effect.orElseSucceed(fs.exists(where.file), () => false), (exists) =>
        exists
          ? Effect.void
          : Effect.fail(
            CliError.notFound(
              `no server database at ${where.file} (give --db or --database-url; \`autosync token create\` creates one)`
            )
          ))
  )

/**
 * Runs `f` with the store's `Tokens`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const withTokens = <A, E>(
  where: Where,
  f: (tokens: Tokens.Tokens["Type"]) => Effect.Effect<A, E>
): Effect.Effect<A, unknown> =>
  Effect.gen(function*() {
    const { PgMutationLog, SqliteMutationLog, Tokens } = yield* load
    const client = where._tag === "sqlite"
      ? SqliteMutationLog.layerClient({ file: where.file })
      : PgMutationLog.layerClient({ url: where.url, maxConnections: 2 })
    return yield* Effect.flatMap(Tokens.Tokens, f).pipe(Effect.provide(Tokens.layer.pipe(Layer.provide(client))))
  })
