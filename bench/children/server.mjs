// A sync server in its own process: `SyncServer.layerSqlite` on a file or `layerPg` on a URL,
// on 127.0.0.1 and a free port. With `createToken`, first creates a token for `projects`.
import * as HttpServer from "@effect/platform/HttpServer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { pathToFileURL } from "node:url"
import { options, serve } from "../lib/child.mjs"

const opts = options()
// Another build of @autosync/server (e.g. last commit's, to compare before and after a change).
const { SqliteMutationLog, SyncServer, Tokens } = await import(
  opts.serverBuild ? pathToFileURL(`${opts.serverBuild}/index.js`).href : "@autosync/server"
)
if (opts.sqlStats) (await import("../lib/sqlstats.mjs")).install()
// `compactThreshold: 0` turns the server's background compaction off (the join bench compacts itself).
const common = {
  port: 0,
  host: "127.0.0.1",
  logRequests: false,
  ...(opts.compactThreshold === undefined ? {} : { compactThreshold: opts.compactThreshold })
}

let token = opts.token
if (opts.createToken) {
  const tokens = opts.file
    ? Tokens.layer.pipe(Layer.provide(SqliteMutationLog.layerClient({ file: opts.file })))
    : Tokens.layerPg({ url: opts.url })
  token = await Effect.runPromise(
    Effect.flatMap(Tokens.Tokens, (t) => t.create(opts.projects)).pipe(Effect.provide(tokens))
  )
}

const scope = Effect.runSync(Scope.make())
const layer = opts.file
  ? SyncServer.layerSqlite({ ...common, file: opts.file })
  : SyncServer.layerPg({ ...common, url: opts.url, maxConnections: opts.maxConnections ?? 10 })
const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
const address = Context.get(context, HttpServer.HttpServer).address

serve(
  { url: `http://127.0.0.1:${address.port}`, token },
  {},
  () => Effect.runPromise(Scope.close(scope, Exit.void))
)
