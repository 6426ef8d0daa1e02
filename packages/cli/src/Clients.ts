/**
 * `autosync clients --server URL --token T [--json]`: who is connected to a running server, read
 * from its `GET /v1/admin/clients` with an admin token (`autosync token create --admin`). Asking
 * the server (not its database) gives what an operator expects: the live view of that server,
 * including what it has not written to its table yet, and the same answer for SQLite and
 * PostgreSQL.
 *
 * @since 0.1.0
 */
import { SyncApi } from "@autosync/http"
import * as Command from "@effect/cli/Command"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as CliError from "./CliError.js"
import * as Flags from "./Flags.js"

const encode = Schema.encodeSync(SyncApi.ClientsResponse)

const table = (response: SyncApi.ClientsResponse) => {
  const when = (d: Date | null) => d === null ? "never" : d.toISOString()
  const cells = [
    ["CLIENT", "TOKEN", "CURSOR", "LAG", "LAST PUSH", "LAST PULL", "PUSHED", "PULLED"],
    ...response.clients.map((c) => [
      c.clientId,
      c.tokenId ?? "-",
      c.cursor === null ? "-" : String(c.cursor),
      c.lag === null ? "-" : String(c.lag),
      when(c.lastPushAt),
      when(c.lastPullAt),
      String(c.pushed),
      String(c.pulled)
    ])
  ]
  const widths = cells[0].map((_, i) => Math.max(...cells.map((c) => c[i].length)))
  return cells.map((c) => c.map((cell, i) => i === c.length - 1 ? cell : cell.padEnd(widths[i])).join("  ")).join("\n")
}

/** The server's answer in one line: 401/403 name the token problem, anything else the server's message. */
const explainRequest = (server: string) => (error: unknown) => {
  if (error instanceof SyncApi.Unauthorized || error instanceof SyncApi.Forbidden) {
    return CliError.failure(`${server} refused the token: ${error.message}`)
  }
  const message = typeof error === "object" && error !== null && "message" in error ? String(error.message) : ""
  return CliError.failure(`could not read the clients of ${server}: ${message || String(error)}`)
}

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "clients",
  { server: Flags.serverUrl, token: Flags.token, json: Flags.json },
  (opts) =>
    Effect.gen(function*() {
      const client = yield* HttpApiClient.make(SyncApi.SyncApi, {
        baseUrl: opts.server,
        transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(Redacted.value(opts.token)))
      })
      const response = yield* client.admin.clients().pipe(
        Effect.timeout("30 seconds"),
        Effect.mapError(explainRequest(opts.server))
      )
      if (opts.json) return yield* Console.log(JSON.stringify(encode(response)))
      if (response.clients.length === 0) {
        return yield* Console.error(`no client has synced with ${opts.server} yet (latest seq ${response.latestSeq})`)
      }
      yield* Console.log(table(response))
    }).pipe(Effect.provide(FetchHttpClient.layer), CliError.explain)
).pipe(
  Command.withDescription(
    "Show who is connected to a server: per client id its last push and pull, cursor, lag and token id. Needs an admin token."
  )
)
