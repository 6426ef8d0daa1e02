// node-postgres for the bench's own schema set-up: the copy @effect/sql-pg uses (the root has
// no direct dependency on it).
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

export const loadPg = () => {
  const sqlPg = createRequire(join(root, "packages", "server", "package.json")).resolve("@effect/sql-pg/package.json")
  return createRequire(sqlPg)("pg")
}
