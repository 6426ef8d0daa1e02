import { CloudTransport } from "@autosync/core"
import { HttpCloudTransport } from "@autosync/http"
import { MutationLog, SqliteMutationLog, SyncServer, Tokens } from "@autosync/server"
import { Fixtures } from "@autosync/testkit"
import * as HttpServer from "@effect/platform/HttpServer"
import { Context, Effect, Layer } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** A temporary directory, removed when the scope closes. */
export const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "autosync-server-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** A fresh SQLite file in a temporary directory. */
export const tempDbFile = Effect.map(tempDir, (dir) => join(dir, "server.db"))

/** The base URL of the running `HttpServer`. */
export const baseUrl = Effect.map(HttpServer.HttpServer, (server) => {
  const address = server.address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  return `http://127.0.0.1:${address.port}`
})

/** A running server and a way to talk to it. */
export class TestServer extends Context.Tag("test/TestServer")<TestServer, {
  readonly url: string
  readonly token: (projects: ReadonlyArray<string>) => Effect.Effect<string>
  /** An admin token (it may also read `/v1/admin/*`) with these projects. */
  readonly adminToken: (projects: ReadonlyArray<string>) => Effect.Effect<string>
  readonly transport: (projects: ReadonlyArray<string>) => Effect.Effect<CloudTransport.CloudTransport["Type"]>
}>() {}

/** A `TestServer` over the `MutationLog` and `Tokens` provided to it, on 127.0.0.1 and a free port. */
export const layerServer = (
  options: SyncServer.Options = {}
): Layer.Layer<TestServer, never, MutationLog.MutationLog | Tokens.Tokens> =>
  Layer.effect(
    TestServer,
    Effect.gen(function*() {
      const url = yield* baseUrl
      const tokens = yield* Tokens.Tokens
      const token = (projects: ReadonlyArray<string>) => Effect.orDie(tokens.create(projects))
      return {
        url,
        token,
        adminToken: (projects) => Effect.orDie(tokens.create(projects, { admin: true })),
        transport: (projects) =>
          token(projects).pipe(
            Effect.flatMap((t) =>
              HttpCloudTransport.layer({ baseUrl: url, token: t, timeout: "10 seconds" }).pipe(
                Layer.build,
                Effect.map(Context.get(CloudTransport.CloudTransport))
              )
            ),
            Effect.scoped
          )
      }
    })
  ).pipe(
    Layer.provideMerge(
      SyncServer.layer({ port: 0, host: "127.0.0.1", logRequests: false, ...options }).pipe(Layer.orDie)
    )
  )

/** A server over a memory log and memory tokens. */
export const layerMemoryServer = (options: SyncServer.Options = {}): Layer.Layer<TestServer> =>
  layerServer(options).pipe(Layer.provide(Layer.merge(MutationLog.layerMemory, Tokens.layerMemory)))

/** A server over a fresh SQLite file (log and tokens in it). */
export const layerSqliteServer = (options: SyncServer.Options = {}): Layer.Layer<TestServer> =>
  Layer.unwrapScoped(
    Effect.map(tempDbFile, (file) =>
      layerServer(options).pipe(
        Layer.provide(Layer.merge(SqliteMutationLog.layer(), Tokens.layer)),
        Layer.provide(SqliteMutationLog.layerClient({ file })),
        Layer.orDie
      ))
  )

/** The suites' fixtures, shared with the server's own tests. */
export const entry: typeof Fixtures.entry = Fixtures.entry
export const failureOf: typeof Fixtures.failureOf = Fixtures.failureOf

/** Raw HTTP, for what the typed client would refuse to send. */
export const request = (
  url: string,
  init: { method?: string; token?: string; body?: string; headers?: Record<string, string> } = {}
) =>
  Effect.promise(async () => {
    const headers: Record<string, string> = { ...init.headers }
    if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`
    if (init.body !== undefined && headers["content-type"] === undefined) headers["content-type"] = "application/json"
    const response = await fetch(url, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers,
      ...(init.body === undefined ? {} : { body: init.body })
    })
    const text = await response.text()
    let json: any = undefined
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    return {
      status: response.status,
      text,
      json,
      contentType: response.headers.get("content-type"),
      connection: response.headers.get("connection")
    }
  })
