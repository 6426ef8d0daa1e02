import { DatabaseKind } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"

const { Plain, Replica, Server } = DatabaseKind.DatabaseKind

describe("DatabaseKind.fromTables", () => {
  it("tells a server's database, a replica and a plain database apart by their tables", () => {
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, DatabaseKind.DatabaseKind]> = [
      [[], Plain()],
      [["notes", "users"], Plain()],
      [["autosync_log"], Server({ found: ["autosync_log"] })],
      [
        ["autosync_tokens", "autosync_server_migrations"],
        Server({ found: ["autosync_server_migrations", "autosync_tokens"] })
      ],
      // a half-migrated or damaged replica is still a replica
      [["sync_state"], Replica({ found: ["sync_state"] })],
      [["autosync_migrations", "notes"], Replica({ found: ["autosync_migrations"] })],
      [
        ["sync_meta", "sync_documents", "sync_mutations", "sync_state", "autosync_migrations"],
        Replica({ found: ["sync_state", "sync_mutations", "sync_meta", "autosync_migrations"] })
      ],
      // a server's tables win, whatever else the file holds
      [["sync_state", "autosync_log"], Server({ found: ["autosync_log"] })]
    ]
    for (const [tables, expected] of cases) {
      assert.deepStrictEqual(DatabaseKind.fromTables(tables), expected, tables.join())
    }
  })
})
