import { CloudTransport, LocalStore, Mutation, SyncConfig, SyncManager } from "@autosync/core"
import { Clock, Effect, Layer, Option } from "effect"

/**
 * A transport over a memory server that records `push@<ms>` / `pull@<ms>` and has switches for
 * failures (Replicache / Sharding style fakes).
 */
export interface Fake {
  readonly transport: CloudTransport.CloudTransport["Type"]
  readonly log: Array<string>
  readonly batches: Array<Mutation.PushBatch>
  readonly pulls: Array<number>
  /** Fail the next N pushes with `error`. */
  failPush: number
  /** Fail the next N pulls with `error`. */
  failPull: number
  error: CloudTransport.TransportError
  /** Die (a defect) in the next N pushes. */
  diePush: number
  /** Drop the last accepted seq of every push result (after the server stored it). */
  partial: boolean
  /** Return a page claiming `has_more` with no mutations. */
  stuckPage: boolean
  /** Pages start one seq early: the boundary seq (at the cursor) is sent again. */
  resendBoundary: boolean
  /** The server is down: push, pull and health fail with `transport_failed` and no status. */
  down: boolean
  /** Health probes, as `health@<ms>`. */
  readonly probes: Array<string>
}

const unreachable = new CloudTransport.TransportError({
  reason: "transport_failed",
  message: "request failed: connect ECONNREFUSED"
})

export const makeFake = (inner: CloudTransport.CloudTransport["Type"], identity?: string): Fake => {
  const fake: Fake = {
    resendBoundary: false,
    down: false,
    probes: [],
    log: [],
    batches: [],
    pulls: [],
    failPush: 0,
    failPull: 0,
    error: new CloudTransport.TransportError({ reason: "transport_failed", status: 503, message: "unavailable" }),
    diePush: 0,
    partial: false,
    stuckPage: false,
    transport: CloudTransport.CloudTransport.of({
      push: (batch) =>
        Effect.gen(function*() {
          fake.log.push(`push@${yield* Clock.currentTimeMillis}`)
          fake.batches.push(batch)
          if (fake.down) return yield* unreachable
          if (fake.diePush > 0) {
            fake.diePush--
            return yield* Effect.die(new Error("boom in push"))
          }
          if (fake.failPush > 0) {
            fake.failPush--
            return yield* fake.error
          }
          const result = yield* inner.push(batch)
          return fake.partial ? { acceptedSeqs: result.acceptedSeqs.slice(0, -1) } : result
        }),
      pull: (sinceSeq, limit, options) =>
        Effect.gen(function*() {
          // A long-poll (the live-sync watcher) is logged apart from the cycles' pulls.
          fake.log.push(`${options?.wait === undefined ? "pull" : "watch"}@${yield* Clock.currentTimeMillis}`)
          fake.pulls.push(sinceSeq)
          if (fake.down) return yield* unreachable
          if (fake.failPull > 0) {
            fake.failPull--
            return yield* fake.error
          }
          if (fake.stuckPage) return { mutations: [], hasMore: true, latestSeq: sinceSeq + 10 }
          if (fake.resendBoundary && sinceSeq > 0) return yield* inner.pull(sinceSeq - 1, limit, options)
          return yield* inner.pull(sinceSeq, limit, options)
        }),
      health: Effect.gen(function*() {
        fake.probes.push(`health@${yield* Clock.currentTimeMillis}`)
        if (fake.down) return yield* unreachable
      }),
      ...(identity === undefined ? {} : { identity })
    })
  }
  return fake
}

export interface Replica {
  readonly store: LocalStore.LocalStore["Type"]
  readonly fake: Fake
  readonly manager: SyncManager.SyncManager["Type"]
  readonly config: SyncConfig.SyncConfig
}

/** A manager over a memory store and a fake transport on `server`. Enrolls project "p" unless told otherwise. */
export const makeReplica = (options: {
  readonly server: CloudTransport.MemoryServer
  readonly config?: SyncConfig.Input
  readonly store?: LocalStore.LocalStore["Type"]
  readonly clientId?: string
  readonly allowedProjects?: ReadonlyArray<string>
  readonly enroll?: ReadonlyArray<string>
  /** The transport's identity (server URL and token hash, for a real one). */
  readonly identity?: string
}) =>
  Effect.gen(function*() {
    const store = options.store ?? (yield* LocalStore.makeMemory({ clientId: options.clientId ?? "replica-a" }))
    for (const project of options.enroll ?? ["p"]) yield* store.enroll(project)
    const fake = makeFake(
      CloudTransport.fromMemoryServer(
        options.server,
        options.allowedProjects ? { allowedProjects: options.allowedProjects } : {}
      ),
      options.identity
    )
    const config = yield* SyncConfig.make({ leaseOwner: "w1", ...options.config })
    const manager = yield* SyncManager.make(config).pipe(
      Effect.provide(Layer.mergeAll(
        Layer.succeed(LocalStore.LocalStore, store),
        Layer.succeed(CloudTransport.CloudTransport, fake.transport)
      ))
    )
    return { store, fake, manager, config } satisfies Replica
  })

export const put = (store: LocalStore.LocalStore["Type"], key: string, value: unknown, project = "p") =>
  store.appendLocal("cloud", [{ project, entity: "doc", entityKey: key, op: "upsert", payload: value }])

/** The documents the server's log gives when replayed in seq order. */
export const replay = (log: ReadonlyArray<Mutation.PulledMutation>) => {
  const docs = new Map<string, unknown>()
  for (const m of log) {
    const key = `${m.project}/${m.entity}/${m.entityKey}`
    if (m.op === "delete") docs.delete(key)
    else docs.set(key, m.payload)
  }
  return docs
}

export const documentsOf = (store: LocalStore.LocalStore["Type"], projects: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const docs = new Map<string, unknown>()
    for (const project of projects) {
      for (const d of yield* store.listDocuments(project)) docs.set(`${d.project}/${d.entity}/${d.entityKey}`, d.value)
    }
    return docs
  })

export const isSome = Option.isSome
