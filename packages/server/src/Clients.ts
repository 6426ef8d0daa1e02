/**
 * Who is connected: per client id, when it last pushed and pulled, the token it used last, its
 * cursor (the highest seq up to which it has been sent every mutation it reads: the `latest_seq`
 * of its last complete page, or the `since_seq` it asked from, whichever is higher) and how many mutations it pushed and was sent. What
 * `GET /v1/admin/clients`, `autosync clients` and the dashboard show; the lag (latest seq −
 * cursor) is computed when read.
 *
 * Cheap on the hot path: a push or pull only updates a map in memory (a `Ref`). `layer` (SQLite or
 * PostgreSQL, table `autosync_clients`) writes the accumulated changes in one transaction
 * {@link Options.flushInterval} (5 s) after the first change since the last write, when read,
 * and when the server stops: one UPSERT per client that was active in the interval, never one
 * write per request; a server without requests wakes for none of this. A server killed with
 * `kill -9` loses at most the last interval's bookkeeping (never a mutation). Several servers
 * sharing one PostgreSQL database merge their rows: counts add up, the latest times win.
 * `layerMemory` keeps everything in memory (the default of a server without a database).
 *
 * @since 0.1.0
 */
import type * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Arr from "effect/Array"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Order from "effect/Order"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Migrations from "./internal/migrations.js"

/**
 * What the server knows of one client id. Times are epoch milliseconds, `undefined` if never.
 *
 * @since 0.1.0
 * @category models
 */
export interface Client {
  readonly clientId: string
  /** The id of the token of its last request (`Tokens.idOf`), never the token. */
  readonly tokenId: string | undefined
  readonly lastPushAt: number | undefined
  readonly lastPullAt: number | undefined
  /**
   * The highest seq up to which it was sent every mutation it reads (its own are left out of its
   * pulls): the `latest_seq` of a page without `has_more`, the last seq of a page with it, or the
   * `since_seq` it asked from. It never goes back.
   */
  readonly cursor: number | undefined
  /** Mutations it pushed (retries included). */
  readonly pushed: number
  /** Mutations it was sent by pulls. */
  readonly pulled: number
}

/**
 * @since 0.1.0
 * @category errors
 */
export class ClientsError extends Schema.TaggedError<ClientsError>()("ClientsError", {
  message: Schema.String,
  cause: Schema.optionalWith(Schema.Defect, { exact: true })
}) {}

/**
 * @since 0.1.0
 * @category tags
 */
export class Clients extends Context.Tag("@autosync/server/Clients")<Clients, {
  /** A push of `mutations` entries by `clientId` was accepted. */
  readonly recordPush: (clientId: string, tokenId: string, mutations: number) => Effect.Effect<void>
  /** A pull by `clientId` from `cursor` arrived (recorded before it is answered or held). */
  readonly recordPull: (clientId: string, tokenId: string, cursor: number) => Effect.Effect<void>
  /** A pull by `clientId` was answered with `mutations` entries, bringing it up to `cursor`. */
  readonly recordSent: (clientId: string, mutations: number, cursor: number) => Effect.Effect<void>
  /** Every client, most recently seen first. */
  readonly list: Effect.Effect<ReadonlyArray<Client>, ClientsError>
}>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * How long changes accumulate before they are written: the write comes this long after the first
   * change since the last one (so at most once per interval, and never while nothing changes).
   * Defaults to 5 seconds.
   */
  readonly flushInterval?: Duration.DurationInput | undefined
}

const lastSeen = (c: Client) => Math.max(c.lastPushAt ?? 0, c.lastPullAt ?? 0)

/**
 * Most recently seen first, then by client id.
 *
 * @since 0.1.0
 * @category models
 */
export const order: Order.Order<Client> = Order.combine(
  Order.mapInput(Order.reverse(Order.number), lastSeen),
  Order.mapInput(Order.string, (c: Client) => c.clientId)
)

const latest = (a: number | undefined, b: number | undefined) =>
  a === undefined ? b : b === undefined ? a : Math.max(a, b)

/**
 * Two records of one client merged: counts add up, the latest times and the highest cursor win,
 * the token of the later one (`b`) replaces the earlier one's when it has one. Pure.
 *
 * @since 0.1.0
 * @category combinators
 */
export const merge = (a: Client, b: Client): Client => ({
  clientId: a.clientId,
  tokenId: b.tokenId ?? a.tokenId,
  lastPushAt: latest(a.lastPushAt, b.lastPushAt),
  lastPullAt: latest(a.lastPullAt, b.lastPullAt),
  cursor: latest(a.cursor, b.cursor),
  pushed: a.pushed + b.pushed,
  pulled: a.pulled + b.pulled
})

const blank = (clientId: string): Client => ({
  clientId,
  tokenId: undefined,
  lastPushAt: undefined,
  lastPullAt: undefined,
  cursor: undefined,
  pushed: 0,
  pulled: 0
})

/**
 * The in-memory part both layers share: a map of changes, updated in place of a write. `first`
 * runs when a change lands in an empty map (the first since the last write).
 */
const accumulator = (first: Effect.Effect<void> = Effect.void) =>
  Effect.gen(function*() {
    const changes = yield* Ref.make(HashMap.empty<string, Client>())
    const note = (clientId: string, change: Partial<Client>) =>
      Ref.modify(changes, (m) => [
        HashMap.isEmpty(m),
        HashMap.modifyAt(m, clientId, (old) =>
          Option.some(merge(
            Option.getOrElse(old, () => blank(clientId)),
            { ...blank(clientId), ...change }
          )))
      ]).pipe(Effect.flatMap((wasEmpty) => wasEmpty ? first : Effect.void))
    return {
      changes,
      recordPush: (clientId: string, tokenId: string, mutations: number) =>
        Effect.flatMap(
          Clock.currentTimeMillis,
          (now) => note(clientId, { tokenId, lastPushAt: now, pushed: mutations })
        ),
      recordPull: (clientId: string, tokenId: string, cursor: number) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => note(clientId, { tokenId, lastPullAt: now, cursor })),
      recordSent: (clientId: string, mutations: number, cursor: number) => note(clientId, { pulled: mutations, cursor })
    }
  })

/**
 * Clients in memory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<Clients["Type"]> = Effect.map(accumulator(), (acc) =>
  Clients.of({
    recordPush: acc.recordPush,
    recordPull: acc.recordPull,
    recordSent: acc.recordSent,
    list: Effect.map(Ref.get(acc.changes), (m) => Arr.sort(HashMap.toValues(m), order))
  }))

/**
 * Clients in memory.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<Clients> = Layer.effect(Clients, makeMemory)

// PostgreSQL returns BIGINT columns as strings, SQLite as numbers.
const Num = Schema.Union(Schema.Number, Schema.NumberFromString)
const Row = Schema.Struct({
  client_id: Schema.String,
  token_id: Schema.NullOr(Schema.String),
  last_push_at: Schema.NullOr(Num),
  last_pull_at: Schema.NullOr(Num),
  cursor_seq: Schema.NullOr(Num),
  pushed: Num,
  pulled: Num
})
const decodeRows = Schema.decodeUnknown(Schema.Array(Row))
const fromRow = (r: typeof Row.Type): Client => ({
  clientId: r.client_id,
  tokenId: r.token_id ?? undefined,
  lastPushAt: r.last_push_at ?? undefined,
  lastPullAt: r.last_pull_at ?? undefined,
  cursor: r.cursor_seq ?? undefined,
  pushed: r.pushed,
  pulled: r.pulled
})

const storage = (cause: { readonly message: string }) =>
  new ClientsError({ message: `the clients table failed: ${cause.message}`, cause })

/**
 * Clients in the `SqlClient`'s database (the server's migrations must have run: `autosync_clients`).
 * Forks the periodic flush into the scope and flushes once more when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<Clients["Type"], never, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // Offered when a change lands in an empty map: what starts the wait before the next write.
    const dirty = yield* Queue.sliding<void>(1)
    const signal = Effect.asVoid(Queue.offer(dirty, undefined))
    const acc = yield* accumulator(signal)
    // SQLite's two-argument max() is GREATEST; both ignore nothing, hence the COALESCEs.
    const greatest = sql.onDialectOrElse({ sqlite: () => "max", orElse: () => "GREATEST" })
    const newer = (column: string) =>
      sql.literal(
        `${greatest}(COALESCE(excluded.${column}, autosync_clients.${column}), ` +
          `COALESCE(autosync_clients.${column}, excluded.${column}))`
      )
    const upsert = (c: Client) =>
      sql`INSERT INTO autosync_clients ${
        sql.insert({
          client_id: c.clientId,
          token_id: c.tokenId ?? null,
          last_push_at: c.lastPushAt ?? null,
          last_pull_at: c.lastPullAt ?? null,
          cursor_seq: c.cursor ?? null,
          pushed: c.pushed,
          pulled: c.pulled
        })
      } ON CONFLICT (client_id) DO UPDATE SET
        token_id = COALESCE(excluded.token_id, autosync_clients.token_id),
        last_push_at = ${newer("last_push_at")},
        last_pull_at = ${newer("last_pull_at")},
        cursor_seq = ${newer("cursor_seq")},
        pushed = autosync_clients.pushed + excluded.pushed,
        pulled = autosync_clients.pulled + excluded.pulled`
    // The changes are taken out first; if the write fails they are put back (merged with newer ones)
    // and written again an interval later.
    const flush: Effect.Effect<void, ClientsError> = Effect.gen(function*() {
      const taken = yield* Ref.getAndSet(acc.changes, HashMap.empty())
      if (HashMap.isEmpty(taken)) return
      yield* sql.withTransaction(Effect.forEach(HashMap.values(taken), upsert, { discard: true })).pipe(
        Effect.tapError(() =>
          Ref.update(acc.changes, (m) =>
            HashMap.reduce(taken, m, (acc2, c, id) =>
              HashMap.modifyAt(acc2, id, (newer) =>
                Option.some(Option.match(newer, {
                  onNone: () =>
                    c,
                  onSome: (n) =>
                    merge(c, n)
                }))))).pipe(Effect.zipRight(signal))
        ),
        Effect.mapError(storage)
      )
    })
    const flushLogged = flush.pipe(
      Effect.catchAll((e) =>
        Effect.logWarning(`could not record the connected clients: ${e.message}`).pipe(
          Effect.annotateLogs({ package: "@autosync/server", module: "Clients" })
        )
      )
    )
    // Idle until something changes, then one write an interval later.
    yield* Queue.take(dirty).pipe(
      Effect.zipRight(Effect.sleep(options.flushInterval ?? Duration.seconds(5))),
      Effect.zipRight(flushLogged),
      Effect.forever,
      Effect.forkScoped
    )
    yield* Effect.addFinalizer(() =>
      flushLogged
    )
    const select = sql`SELECT client_id, token_id, last_push_at, last_pull_at, cursor_seq, pushed, pulled
      FROM autosync_clients`
    return Clients.of({
      recordPush: acc.recordPush,
      recordPull: acc.recordPull,
      recordSent: acc.recordSent,
      list: flush.pipe(
        Effect.zipRight(select.pipe(Effect.flatMap(decodeRows), Effect.mapError(storage))),
        Effect.map((rows: ReadonlyArray<typeof Row.Type>) => Arr.sort(rows.map(fromRow), order))
      )
    })
  })

/**
 * Clients in the `SqlClient`'s database (`autosync_clients`; the server's migrations create it).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<Clients, SqlError | Migrator.MigrationError, SqlClient.SqlClient> =>
  Layer.scoped(Clients, make(options)).pipe(Layer.provide(Migrations.layer))
