/**
 * `autosync demo`: a server and two replicas in a temporary directory. Replica A writes the
 * documents (in transactions of `batchSize` rows), replica B follows with live sync (long-poll);
 * a progress bar shows B catching up, then the figures and a check that both document tables
 * are identical. Everything runs in this process over real files and real HTTP on 127.0.0.1,
 * and the directory is removed at the end.
 *
 * @since 0.1.0
 */
import { type LocalStore, type Status, SyncConfig } from "@autosync/core"
import { SqliteMutationLog, SyncServer, Tokens } from "@autosync/server"
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as CliError from "./CliError.js"
import * as Figures from "./Figures.js"
import * as Replica from "./Replica.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly rows: number
  readonly batchSize: number
  readonly json: boolean
}

/**
 * What the demo measured.
 *
 * @since 0.1.0
 * @category models
 */
export interface Result {
  readonly rows: number
  readonly batch_size: number
  readonly write_ms: number
  readonly converge_ms: number
  readonly throughput_rows_per_s: number
  readonly propagation_p50_ms: number
  readonly propagation_p99_ms: number
  readonly propagation_max_ms: number
  readonly identical: boolean
}

const project = "demo"
const stallLimitMs = 10_000

/**
 * Runs the demo and prints its figures; fails with exit code 4 when the tables differ.
 *
 * @since 0.1.0
 * @category commands
 */
export const run = (options: Options): Effect.Effect<void, unknown, FileSystem.FileSystem> =>
  Effect.scoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "autosync-demo-" })
    const serverFile = `${dir}/server.db`
    const say = (line: string) => options.json ? Effect.void : Console.log(line)

    const token = yield* Effect.flatMap(Tokens.Tokens, (t) => t.create([project])).pipe(
      Effect.provide(Tokens.layer.pipe(Layer.provide(SqliteMutationLog.layerClient({ file: serverFile }))))
    )
    const server = yield* Layer.build(
      SyncServer.layerSqlite({ file: serverFile, port: 0, host: "127.0.0.1", logRequests: false })
    )
    const address = Context.get(server, HttpServer.HttpServer).address
    if (address._tag !== "TcpAddress") return yield* CliError.failure("the demo server did not bind a TCP port")
    const serverUrl = `http://127.0.0.1:${address.port}`
    yield* say(`server   ${serverUrl}  (${serverFile})`)

    const common = {
      pushBatchSize: options.batchSize,
      pullBatchSize: options.batchSize,
      debounce: "20 millis"
    } as const
    const a = yield* Replica.run({
      file: `${dir}/a.db`,
      serverUrl,
      token,
      config: yield* SyncConfig.make({ ...common, leaseOwner: "demo-a" })
    })
    yield* a.store.enroll(project)

    // B records when each document is applied, to measure propagation from A's write.
    const appliedAt = new Map<string, number>()
    const observe = (store: LocalStore.LocalStore["Type"]): LocalStore.LocalStore["Type"] => ({
      ...store,
      applyPulledMutations: (targetKey, mutations) =>
        Effect.tap(
          store.applyPulledMutations(targetKey, mutations),
          (results) =>
            Effect.map(Clock.currentTimeMillis, (t) =>
              results.forEach((result, i) => {
                if (result === "applied") appliedAt.set(mutations[i].entityKey, t)
              }))
        )
    })
    const b = yield* Replica.run({
      file: `${dir}/b.db`,
      serverUrl,
      token,
      wrapStore: observe,
      config: yield* SyncConfig.make({ ...common, leaseOwner: "demo-b", longPollWait: "10 seconds" })
    })
    yield* say(`replicas ${dir}/a.db (writer ${a.store.clientId}) → ${dir}/b.db (reader ${b.store.clientId})`)
    yield* say(
      `writing ${options.rows.toLocaleString("en-US")} documents on A in transactions of ${options.batchSize}…`
    )

    const writtenAt = new Map<string, number>()
    const started = yield* Clock.currentTimeMillis
    for (let from = 0; from < options.rows; from += options.batchSize) {
      const batch = Array.from({ length: Math.min(options.batchSize, options.rows - from) }, (_, i) => {
        const n = from + i
        return {
          project,
          entity: "note",
          entityKey: `note-${String(n).padStart(6, "0")}`,
          op: "upsert",
          payload: { n, title: `Note ${n}`, tags: ["demo", n % 2 === 0 ? "even" : "odd"] }
        }
      })
      yield* a.store.appendLocal(SyncConfig.defaults.targetKey, batch)
      const t = yield* Clock.currentTimeMillis
      for (const row of batch) writtenAt.set(row.entityKey, t)
      yield* a.manager.notifyDirty
      yield* Effect.yieldNow()
    }
    const written = yield* Clock.currentTimeMillis

    // Follow B until it has every row, drawing a progress bar; give up when it stalls.
    const tty = process.stderr.isTTY === true && !options.json
    let lastCount = -1
    let lastProgressAt = written
    let lastLineAt = 0
    while (true) {
      const now = yield* Clock.currentTimeMillis
      const count = appliedAt.size
      if (count !== lastCount) {
        lastCount = count
        lastProgressAt = now
      }
      const line = Figures.progressBar(count, options.rows, Figures.rate(count, now - started))
      if (tty) process.stderr.write(`\r${line}`)
      else if (!options.json && (now - lastLineAt >= 1000 || count >= options.rows)) {
        lastLineAt = now
        yield* Console.error(line)
      }
      if (count >= options.rows) break
      if (now - lastProgressAt > stallLimitMs) {
        if (tty) process.stderr.write("\n")
        const describe = (s: Status.Status) => `phase ${s.phase}${s.lastError ? `: ${s.lastError}` : ""}`
        return yield* CliError.failure(
          `replica B stalled at ${count}/${options.rows} (A: ${describe(yield* a.manager.status)}; B: ${
            describe(yield* b.manager.status)
          })`
        )
      }
      yield* Effect.sleep("50 millis")
    }
    if (tty) process.stderr.write("\n")
    const converged = Math.max(...appliedAt.values())

    const delays = [...writtenAt].map(([key, t]) => (appliedAt.get(key) ?? converged) - t)
    const [docsA, docsB] = yield* Effect.all([a.store.listDocuments(project), b.store.listDocuments(project)])
    const identical = docsA.length === options.rows && JSON.stringify(docsA) === JSON.stringify(docsB)
    const result: Result = {
      rows: options.rows,
      batch_size: options.batchSize,
      write_ms: written - started,
      converge_ms: converged - started,
      throughput_rows_per_s: Math.round(Figures.rate(options.rows, converged - started)),
      propagation_p50_ms: Figures.percentile(delays, 50),
      propagation_p99_ms: Figures.percentile(delays, 99),
      propagation_max_ms: Math.max(...delays),
      identical
    }
    if (options.json) yield* Console.log(JSON.stringify(result))
    else {
      yield* Console.log([
        "",
        `written on A       ${result.write_ms} ms (${Figures.formatRate(Figures.rate(result.rows, result.write_ms))})`,
        `converged on B     ${result.converge_ms} ms after the first write`,
        `throughput         ${Figures.formatRate(result.throughput_rows_per_s)} end to end`,
        `propagation delay  p50 ${result.propagation_p50_ms} ms · p99 ${result.propagation_p99_ms} ms · max ${result.propagation_max_ms} ms`,
        `tables identical   ${identical ? "yes" : "NO"} (${docsA.length} documents on A, ${docsB.length} on B)`
      ].join("\n"))
    }
    if (!identical) {
      return yield* new CliError.CliError({ message: "the replicas' document tables differ", exitCode: 4 })
    }
  }))
