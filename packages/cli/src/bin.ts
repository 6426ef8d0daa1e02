/**
 * The process edge of `autosync`: parses `process.argv`, runs the command with Node's runtime,
 * prints a failure in one line and exits with its code (see `CliError`). Ctrl-C (SIGINT) and
 * SIGTERM interrupt the command, which releases what it holds, and exit 0. Logs go to stderr, so
 * stdout carries only the command's output (`agent --json` prints nothing but JSON lines).
 *
 * @since 0.1.0
 */
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { run } from "./Cli.js"
import { CliError } from "./CliError.js"

const program = run(process.argv).pipe(
  Effect.as(0),
  // @effect/cli already printed a usage error with the help: keep just the exit code.
  Effect.catchIf(ValidationError.isValidationError, (e) => Effect.succeed(ValidationError.isHelpRequested(e) ? 0 : 2)),
  Effect.catchAll((error) =>
    Effect.sync(() => {
      const known = error instanceof CliError
      process.stderr.write(`autosync: ${known ? error.message : String(error)}\n`)
      return known ? error.exitCode : 1
    })
  ),
  // A defect is reported here, under the stderr logger, rather than by runMain's logger on stdout.
  Effect.tapErrorCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError(cause)),
  Logger.withMinimumLogLevel(process.env.AUTOSYNC_LOG_LEVEL === "debug" ? LogLevel.Debug : LogLevel.Info),
  Effect.provide(
    Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true, colors: process.stderr.isTTY === true }))
  ),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: (exit, onExit) => {
    if (Exit.isSuccess(exit)) return onExit(typeof exit.value === "number" ? exit.value : 0)
    onExit(Cause.isInterruptedOnly(exit.cause) ? 0 : 1)
  }
})
