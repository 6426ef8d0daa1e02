import { MutationLog, PgMutationLog, SqliteMutationLog } from "@autosync/server"
import { MutationLogSuite } from "@autosync/testkit"
import { Effect, Layer } from "effect"
import { tempDbFile } from "./helpers.js"
import { describePg, freshSchema, layerClient } from "./pg.js"

MutationLogSuite("memory", MutationLog.layerMemory)

MutationLogSuite(
  "SQLite",
  Layer.unwrapScoped(Effect.map(tempDbFile, (file) => SqliteMutationLog.layerFile({ file })))
)

describePg("PostgreSQL", () => {
  MutationLogSuite(
    "PostgreSQL",
    Layer.unwrapScoped(
      Effect.map(freshSchema, (schema) => PgMutationLog.layer().pipe(Layer.provide(layerClient(schema))))
    )
  )
})
