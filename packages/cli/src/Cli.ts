/**
 * The `autosync` command: `serve`, `token create | list | revoke`, `compact`, `clients`, `agent`, `status`, `init`,
 * `enroll`, `unenroll`, `put`, `get`, `list`, `reidentify` and `demo`, one module per command or concern
 * (`Flags.ts` holds the shared flags). Every flag is validated before anything runs; `--help`
 * works after any option; output that is not a terminal has no colour codes.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Agent from "./Agent.js"
import * as Clients from "./Clients.js"
import * as Compact from "./Compact.js"
import * as DemoCommand from "./DemoCommand.js"
import * as DocumentCommands from "./DocumentCommands.js"
import * as Help from "./Help.js"
import * as Reidentify from "./Reidentify.js"
import * as Serve from "./Serve.js"
import * as Status from "./Status.js"
import * as Token from "./Token.js"

// Every subcommand, in the order the help lists them: one line each.
const subcommands = [
  Serve.command,
  Token.command,
  Compact.command,
  Clients.command,
  Agent.command,
  Status.command,
  DocumentCommands.init,
  DocumentCommands.enroll,
  DocumentCommands.unenroll,
  DocumentCommands.put,
  DocumentCommands.get,
  DocumentCommands.list,
  Reidentify.command,
  DemoCommand.command
] as const

/**
 * The root command.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("autosync").pipe(
  Command.withDescription("Local-first replication: a sync server, a sync agent, and the tools around them."),
  Command.withSubcommands(subcommands)
)

const cli = Command.run(command, { name: "autosync", version: "0.1.0" })

const colour = (stream: { readonly isTTY?: boolean }) => stream.isTTY === true && process.env.NO_COLOR === undefined

/**
 * Parses `argv` (as `process.argv`) and runs the command.
 *
 * @since 0.1.0
 * @category commands
 */
export const run = (argv: ReadonlyArray<string>) => {
  const prepared = Help.prepare(argv, subcommands)
  return Help.withOutput(cli(prepared.argv), {
    helpPath: prepared.helpPath,
    stdoutColour: colour(process.stdout),
    stderrColour: colour(process.stderr)
  })
}
