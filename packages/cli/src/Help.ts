/**
 * Help and terminal output around @effect/cli: `--help` (or `-h`) anywhere before `--` shows the
 * help of the command named before it, whatever options come first (`autosync status --db x
 * --help`); usage lines name the whole command (`$ autosync token create …`); and output that
 * does not go to a terminal carries no ANSI colour codes (nor when `NO_COLOR` is set).
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as HashSet from "effect/HashSet"

/**
 * @since 0.1.0
 * @category models
 */
export interface Prepared {
  /** The arguments to parse (`--help` moved right after the command path when it was asked for). */
  readonly argv: ReadonlyArray<string>
  /** The command path whose help was asked for (`[]` for the root), or `undefined`. */
  readonly helpPath: ReadonlyArray<string> | undefined
}

type AnyCommand = Command.Command<any, any, any, any>

const isHelp = (arg: string) => arg === "--help" || arg === "-h"

// The names of a command's own subcommands (none for a leaf, whose "subcommand" is itself).
const childNames = (command: AnyCommand): ReadonlyArray<string> => {
  const own = Command.getNames(command)
  return [...HashMap.keys(Command.getSubcommands(command))].filter((name) => !HashSet.has(own, name))
}

/**
 * Finds a help request in `argv` (as `process.argv`) and rewrites it as `PATH --help`, PATH being
 * the subcommands named at the start of the arguments.
 *
 * @since 0.1.0
 * @category constructors
 */
export const prepare = (argv: ReadonlyArray<string>, subcommands: ReadonlyArray<AnyCommand>): Prepared => {
  const [runtime, script, ...args] = argv
  const end = args.indexOf("--")
  const options = end === -1 ? args : args.slice(0, end)
  if (!options.some(isHelp)) return { argv, helpPath: undefined }
  const path: Array<string> = []
  const first = subcommands.find((c) => args[0] !== undefined && HashSet.has(Command.getNames(c), args[0]))
  if (first !== undefined) {
    path.push(args[0])
    const second = args[1]
    if (second !== undefined && childNames(first).includes(second)) path.push(second)
  }
  return { argv: [runtime, script, ...path, "--help"], helpPath: path }
}

const ansi = /\u001b\[[0-9;]*m/g

/**
 * Text for a stream: without colour codes unless it is a terminal; with usage lines that name
 * the whole command.
 *
 * @since 0.1.0
 * @category constructors
 */
export const format = (
  text: string,
  options: { readonly colour: boolean; readonly helpPath: ReadonlyArray<string> | undefined }
): string => {
  const plain = options.colour ? text : text.replace(ansi, "")
  const path = options.helpPath
  if (path === undefined || path.length === 0) return plain
  const last = path[path.length - 1]
  return plain.replace(new RegExp(`^\\$ ${last}\\b`, "gm"), `$ autosync ${path.join(" ")}`)
}

/**
 * Runs `effect` with a `Console` whose `log` and `error` go through {@link format}.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withOutput = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options: {
    readonly helpPath: ReadonlyArray<string> | undefined
    readonly stdoutColour: boolean
    readonly stderrColour: boolean
  }
): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.console, (base) => {
    const out = (args: ReadonlyArray<unknown>, colour: boolean) =>
      args.map((a) => typeof a === "string" ? format(a, { colour, helpPath: options.helpPath }) : a)
    const console: Console.Console = {
      ...base,
      log: (...args) => base.log(...out(args, options.stdoutColour)),
      info: (...args) => base.info(...out(args, options.stdoutColour)),
      error: (...args) => base.error(...out(args, options.stderrColour)),
      warn: (...args) => base.warn(...out(args, options.stderrColour))
    }
    return Effect.withConsole(effect, console)
  })
