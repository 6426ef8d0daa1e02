/**
 * A failure the `autosync` command reports in one line, with the exit code scripts can test.
 *
 * Exit codes: 0 success, 1 failure (a server, the network, a database), 2 bad usage (a flag or
 * argument), 3 not found (`get` of a missing document), 4 the demo's replicas did not converge.
 *
 * @since 0.1.0
 */
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
