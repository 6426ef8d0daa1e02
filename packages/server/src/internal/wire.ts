/**
 * The body of a pull answer, written straight from a stored page: the same JSON as
 * `Schema.encode(Mutation.PullResponse)` followed by `JSON.stringify` (field names and order,
 * ISO dates), but each payload is spliced in as the JSON text it was stored as. Encoding a page
 * through the schema re-checked every payload (they were checked when pushed) and cost about ten
 * times as much as the rest of a pull.
 */
import type { StoredMutation, StoredPage } from "../MutationLog.js"

const mutationJson = (m: StoredMutation): string =>
  `{"seq":${m.seq},"project":${JSON.stringify(m.project)},"entity":${JSON.stringify(m.entity)},"entity_key":${
    JSON.stringify(m.entityKey)
  },"op":${JSON.stringify(m.op)},"payload":${m.payloadJson},"occurred_at":${
    JSON.stringify(new Date(m.occurredAt).toISOString())
  }}`

/** @internal */
export const pullBody = (page: StoredPage): string =>
  `{"mutations":[${
    page.mutations.map(mutationJson).join(",")
  }],"has_more":${page.hasMore},"latest_seq":${page.latestSeq}}`

/** @internal */
export const pushBody = (acceptedSeqs: ReadonlyArray<number>): string => `{"accepted_seqs":[${acceptedSeqs.join(",")}]}`
