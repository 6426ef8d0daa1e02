/**
 * Reads of the built-in document table (`sync_documents`), which the document applier writes.
 *
 * @internal
 */
import type { LocalStore } from "@autosync/core"
import * as SqlSchema from "@effect/sql/SqlSchema"
import * as Arr from "effect/Array"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Order from "effect/Order"
import * as Schema from "effect/Schema"
import type { Db } from "./db.js"
import { DocumentRow, ValueRow } from "./rows.js"

const byEntityThenKey: Order.Order<LocalStore.Document> = Order.combine(
  Order.mapInput(Order.string, (d: LocalStore.Document) => d.entity),
  Order.mapInput(Order.string, (d: LocalStore.Document) => d.entityKey)
)

/** @internal */
export const make = (
  db: Db
): Pick<LocalStore.LocalStore["Type"], "getDocument" | "listDocuments"> => {
  const { fail, sql } = db
  return {
    getDocument: (project, entity, entityKey) =>
      SqlSchema.findOne({
        Request: Schema.Void,
        Result: ValueRow,
        execute: () =>
          sql`SELECT value FROM sync_documents
            WHERE project = ${project} AND entity = ${entity} AND entity_key = ${entityKey}`
      })(undefined).pipe(
        Effect.map(Option.map((row) => row.value)),
        Effect.mapError(fail("reading a document"))
      ),

    listDocuments: (project, entity) =>
      sql`SELECT project, entity, entity_key, value FROM sync_documents
        WHERE project = ${project} ${entity === undefined ? sql`` : sql`AND entity = ${entity}`}`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(DocumentRow))),
        Effect.map((rows) =>
          Arr.sort(
            rows.map((r): LocalStore.Document => ({
              project: r.project,
              entity: r.entity,
              entityKey: r.entity_key,
              value: r.value
            })),
            byEntityThenKey
          )
        ),
        Effect.mapError(fail("listing documents"))
      )
  }
}
