/**
 * `autosync token create | list | revoke`: the server's bearer tokens, in its SQLite file or
 * PostgreSQL database. A token is shown once, by `create`; afterwards only its id is (`list`),
 * and `revoke ID` deletes it: servers refuse it once their cache of verified tokens (10 s)
 * forgets it. `create --admin` makes an admin token: it may also read the admin endpoints
 * (`autosync clients`, the dashboard), and it may have no project.
 *
 * @since 0.1.0
 */
import type { Tokens } from "@autosync/server"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as CliError from "./CliError.js"
import * as Flags from "./Flags.js"
import * as ServerStore from "./ServerStore.js"

const store = { db: Flags.serverDb, databaseUrl: Flags.databaseUrl }

const create = Command.make(
  "create",
  {
    ...store,
    projects: Options.text("project").pipe(
      Options.repeated,
      Options.withDescription("A project the token may read and write; repeat for several.")
    ),
    admin: Options.boolean("admin").pipe(
      Options.withDescription(
        "An admin token: it may also read the admin endpoints (`autosync clients`, /dashboard); --project is optional."
      )
    )
  },
  (opts) =>
    Effect.gen(function*() {
      if (opts.projects.length === 0 && !opts.admin) {
        return yield* CliError.usage("token create needs at least one --project (or --admin)")
      }
      const where = yield* ServerStore.choose(opts.db, opts.databaseUrl)
      const { Tokens } = yield* ServerStore.load
      const created = yield* ServerStore.withoutLeftovers(
        where,
        ServerStore.withTokens(where, (t) => t.create(opts.projects, { admin: opts.admin })).pipe(
          Effect.mapError((e) =>
            e instanceof Tokens.TokensError && e.reason === "invalid_projects" ? CliError.usage(e.message) : e
          )
        )
      )
      const what = [...(opts.admin ? ["admin"] : []), ...opts.projects].join(", ")
      yield* Console.error(`token ${Tokens.idOf(created)} for ${what} (shown once; keep it secret):`)
      yield* Console.log(created)
    }).pipe(CliError.explain)
).pipe(
  Command.withDescription(
    "Create a token allowed the given projects (--admin: also the admin endpoints); prints it once, on the last line (its id goes to stderr)."
  )
)

const row = (t: Tokens.TokenInfo) => ({
  id: t.id,
  projects: t.projects,
  admin: t.admin,
  created_at: t.createdAt.toISOString(),
  last_used_at: t.lastUsedAt?.toISOString() ?? null
})

const table = (rows: ReadonlyArray<ReturnType<typeof row>>) => {
  const cells = [
    ["ID", "PROJECTS", "ADMIN", "CREATED", "LAST USED"],
    ...rows.map((r) => [r.id, r.projects.join(","), r.admin ? "yes" : "no", r.created_at, r.last_used_at ?? "never"])
  ]
  const widths = cells[0].map((_, i) => Math.max(...cells.map((c) => c[i].length)))
  return cells.map((c) => c.map((cell, i) => i === c.length - 1 ? cell : cell.padEnd(widths[i])).join("  ")).join("\n")
}

const list = Command.make(
  "list",
  { ...store, json: Flags.json },
  (opts) =>
    Effect.gen(function*() {
      const where = yield* ServerStore.choose(opts.db, opts.databaseUrl)
      yield* ServerStore.requireExisting(where)
      const rows = (yield* ServerStore.withTokens(where, (t) => t.list)).map(row)
      if (opts.json) return yield* Console.log(JSON.stringify(rows))
      if (rows.length === 0) return yield* Console.error(`no tokens in ${ServerStore.describe(where)}`)
      yield* Console.log(table(rows))
    }).pipe(CliError.explain)
).pipe(
  Command.withDescription(
    "List the tokens: id, projects, admin or not, when created and last used (to within 10 s). Never the tokens themselves."
  )
)

const revoke = Command.make(
  "revoke",
  { ...store, id: Args.text({ name: "id" }).pipe(Args.withDescription("The token's id, as `token list` shows it.")) },
  (opts) =>
    Effect.gen(function*() {
      const where = yield* ServerStore.choose(opts.db, opts.databaseUrl)
      yield* ServerStore.requireExisting(where)
      const { Tokens } = yield* ServerStore.load
      const revoked = yield* ServerStore.withTokens(where, (t) => t.revoke(opts.id)).pipe(
        Effect.mapError((e) =>
          e instanceof Tokens.TokensError && e.reason === "not_found"
            ? CliError.notFound(
              `no token ${JSON.stringify(opts.id)} in ${
                ServerStore.describe(where)
              } (\`autosync token list\` shows the ids)`
            )
            : e
        )
      )
      yield* Console.log(
        `revoked ${revoked.id} (${[...(revoked.admin ? ["admin"] : []), ...revoked.projects].join(", ")}): ` +
          `servers refuse it within 10 s ` +
          `(they remember a verified token that long)`
      )
    }).pipe(CliError.explain)
).pipe(
  Command.withDescription(
    "Revoke a token by id; servers refuse it within 10 s (their cache of verified tokens). Exit code 3 for an unknown id."
  )
)

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("token").pipe(
  Command.withDescription("Manage the server's tokens: create, list, revoke."),
  Command.withSubcommands([create, list, revoke])
)
