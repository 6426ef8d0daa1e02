/**
 * The commands on a replica's documents and enrollment: `init`, `enroll`, `unenroll`, `put`,
 * `get`, `list`. Reads refuse a missing file (a mistyped `--db` creates nothing).
 *
 * @since 0.1.0
 */
import { LocalStore } from "@autosync/core"
import { Documents } from "@autosync/sqlite"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as CliError from "./CliError.js"
import * as Flags from "./Flags.js"
import * as Replica from "./Replica.js"

/**
 * @since 0.1.0
 * @category commands
 */
export const init = Command.make(
  "init",
  { db: Flags.localDb },
  (opts) =>
    Effect.flatMap(LocalStore.LocalStore, (s) => Console.log(`replica ${opts.db} ready (client id ${s.clientId})`))
      .pipe(
        Effect.provide(Replica.layerLocal(opts.db)),
        CliError.explain
      )
).pipe(Command.withDescription("Create (or check and migrate) a replica file and print its client id."))

/**
 * @since 0.1.0
 * @category commands
 */
export const enroll = Command.make(
  "enroll",
  { db: Flags.localDb, project: Flags.projectArg },
  (opts) =>
    Effect.flatMap(LocalStore.LocalStore, (s) => s.enroll(opts.project)).pipe(
      Effect.zipRight(Console.log(`enrolled ${opts.project}: its local writes will be pushed`)),
      Effect.provide(Replica.layerLocal(opts.db)),
      CliError.explain
    )
).pipe(Command.withDescription("Enroll a project: only enrolled projects' local writes are pushed."))

/**
 * @since 0.1.0
 * @category commands
 */
export const unenroll = Command.make(
  "unenroll",
  { db: Flags.localDb, project: Flags.projectArg },
  (opts) =>
    Effect.flatMap(LocalStore.LocalStore, (s) => s.unenroll(opts.project)).pipe(
      Effect.zipRight(Console.log(`unenrolled ${opts.project}: its local writes stay pending`)),
      Effect.provide(Replica.layerLocal(opts.db)),
      CliError.explain
    )
).pipe(Command.withDescription("Stop pushing a project's local writes (they stay pending)."))

const parseJson = (raw: string) =>
  Effect.try({
    try: () => JSON.parse(raw) as unknown,
    catch: () => CliError.usage(`the value must be JSON (quote strings: '"text"'), got ${JSON.stringify(raw)}`)
  })

/**
 * @since 0.1.0
 * @category commands
 */
export const put = Command.make(
  "put",
  {
    db: Flags.localDb,
    project: Flags.projectArg,
    entity: Flags.entityArg,
    key: Flags.keyArg,
    value: Args.text({ name: "json" })
  },
  (opts) =>
    // The JSON is checked before the file is opened: a bad value must not create a replica.
    Effect.flatMap(parseJson(opts.value), (value) =>
      Effect.gen(function*() {
        const documents = yield* Documents.Documents
        const seq = yield* documents.put(opts.project, opts.entity, opts.key, value).pipe(
          Effect.mapError((e) => e.reason === "invalid_input" ? CliError.usage(e.message) : CliError.failure(e.message))
        )
        yield* Console.log(`stored ${opts.project}/${opts.entity}/${opts.key} (journal seq ${seq})`)
        // Stored either way; but a write nobody will push deserves a word (on stderr: stdout stays the result).
        const enrolled = yield* Effect.flatMap(LocalStore.LocalStore, (store) => store.listEnrolled)
        if (!enrolled.includes(opts.project)) {
          yield* Console.error(
            `note: ${opts.project} is not enrolled in ${opts.db}: this write stays local until \`autosync enroll ${opts.project}\``
          )
        }
      }).pipe(Effect.provide(Replica.layerLocal(opts.db)))).pipe(CliError.explain)
).pipe(Command.withDescription("Write a document (JSON) locally; a running agent pushes it."))

/**
 * @since 0.1.0
 * @category commands
 */
export const get = Command.make(
  "get",
  { db: Flags.localDb, project: Flags.projectArg, entity: Flags.entityArg, key: Flags.keyArg },
  (opts) =>
    Effect.gen(function*() {
      const documents = yield* Documents.Documents
      const value = yield* documents.get(opts.project, opts.entity, opts.key)
      if (Option.isNone(value)) {
        return yield* CliError.notFound(`no document ${opts.project}/${opts.entity}/${opts.key}`)
      }
      yield* Console.log(JSON.stringify(value.value))
    }).pipe(Effect.provide(Replica.layerExisting(opts.db)), CliError.explain)
).pipe(
  Command.withDescription("Print a document's JSON (exit code 3 when there is none).")
)

/**
 * @since 0.1.0
 * @category commands
 */
export const list = Command.make(
  "list",
  { db: Flags.localDb, json: Flags.json, project: Flags.projectArg, entity: Args.optional(Flags.entityArg) },
  (opts) =>
    Effect.gen(function*() {
      const documents = yield* Documents.Documents
      const docs = yield* documents.list(opts.project, Option.getOrUndefined(opts.entity))
      if (opts.json) {
        return yield* Console.log(
          JSON.stringify(docs.map((d) => ({ entity: d.entity, key: d.entityKey, value: d.value })))
        )
      }
      for (const d of docs) yield* Console.log(`${d.entity}\t${d.entityKey}\t${JSON.stringify(d.value)}`)
    }).pipe(Effect.provide(Replica.layerExisting(opts.db)), CliError.explain)
).pipe(Command.withDescription("List a project's documents (of one entity when given): entity, key, JSON."))
