/**
 * The body of a pull answer, written straight from a stored page: the same JSON as
 * `Schema.encode(Mutation.PullResponse)` followed by `JSON.stringify` (field names and order,
 * ISO dates), but each payload is spliced in as the JSON text it was stored as. Encoding a page
 * through the schema re-checked every payload (they were checked when pushed) and cost about ten
 * times as much as the rest of a pull.
 */
import type { StoredMutation, StoredPage } from "../MutationLog.js"

/** `JSON.stringify(f(x))` for a run of mostly equal `x`: encoded again only when `x` changes. */
const lastEncoded = <A>(f: (a: A) => string) => {
  let last: { readonly a: A; readonly json: string } | undefined
  return (a: A): string => {
    if (last === undefined || last.a !== a) last = { a, json: JSON.stringify(f(a)) }
    return last.json
  }
}

/** @internal */
export const pullBody = (page: StoredPage): string => {
  // A page's rows mostly share their project, entity, op and time (one push): each is encoded once.
  const project = lastEncoded((s: string) => s)
  const entity = lastEncoded((s: string) => s)
  const op = lastEncoded((s: string) => s)
  const at = lastEncoded((ms: number) => new Date(ms).toISOString())
  const mutationJson = (m: StoredMutation): string =>
    `{"seq":${m.seq},"project":${project(m.project)},"entity":${entity(m.entity)},"entity_key":${
      JSON.stringify(m.entityKey)
    },"op":${op(m.op)},"payload":${m.payloadJson},"occurred_at":${at(m.occurredAt)}}`
  return `{"mutations":[${
    page.mutations.map(mutationJson).join(",")
  }],"has_more":${page.hasMore},"latest_seq":${page.latestSeq}}`
}

/** @internal */
export const pushBody = (acceptedSeqs: ReadonlyArray<number>): string => `{"accepted_seqs":[${acceptedSeqs.join(",")}]}`
