/**
 * A failure the `autosync` command reports in one line, with the exit code scripts can test.
 *
 * Exit codes: 0 success, 1 failure (a server, the network, a database), 2 bad usage (a flag or
 * argument), 3 not found (`get` of a missing document, `token revoke` of an unknown id, a missing
 * file for a command that only reads it), 4 the demo's replicas did not converge.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/**
 * @since 0.1.0
 * @category errors
 */
export class CliError extends Schema.TaggedError<CliError>()("CliError", {
  message: Schema.String,
  exitCode: Schema.Number
}) {}

/**
 * @since 0.1.0
 * @category constructors
 */
export const usage = (message: string) => new CliError({ message, exitCode: 2 })

/**
 * @since 0.1.0
 * @category constructors
 */
export const notFound = (message: string) => new CliError({ message, exitCode: 3 })

/**
 * @since 0.1.0
 * @category constructors
 */
export const failure = (message: string) => new CliError({ message, exitCode: 1 })

/**
 * Errors of the layers below as one-line messages with an exit code (1 unless already a
 * `CliError`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const explain = <A, R>(effect: Effect.Effect<A, unknown, R>): Effect.Effect<A, CliError, R> =>
  Effect.mapError(effect, (error) => {
    if (error instanceof CliError) return error
    const message = typeof error === "object" && error !== null && "message" in error
      ? String(error.message)
      : String(error)
    // Never a bare "autosync: ": an error without a message is named by its tag at least.
    const tag = typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : "error"
    return failure(message.length > 0 ? message : `${tag} (no details)`)
  })
