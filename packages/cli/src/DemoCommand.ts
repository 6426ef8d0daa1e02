/**
 * `autosync demo`: the command; the demo itself (`Demo.ts`) loads only when it runs.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as CliError from "./CliError.js"
import * as Flags from "./Flags.js"

const loadDemo = Effect.promise(() => import("./Demo.js"))

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "demo",
  {
    rows: Flags.positiveInt("rows", 10_000, "How many documents replica A writes. Defaults to 10000."),
    batchSize: Flags.positiveInt(
      "batch-size",
      500,
      "Rows per write transaction, push and pull page (at most 1000). Defaults to 500."
    ).pipe(
      Options.mapEffect((n) =>
        n <= 1000 ? Effect.succeed(n) : Effect.fail(Flags.invalid(`--batch-size must be at most 1000, got ${n}`))
      )
    ),
    json: Options.boolean("json").pipe(Options.withDescription("Print the figures as one JSON object at the end."))
  },
  (opts) => Effect.flatMap(loadDemo, (Demo) => Demo.run(opts)).pipe(CliError.explain)
).pipe(
  Command.withDescription(
    "Start a server and two replicas in a temporary directory, write on A, watch B catch up, print the timings."
  )
)
