/** Looking at a database file from outside, to prove a command left it unchanged. */
import { createHash } from "node:crypto"
import { existsSync, readFileSync } from "node:fs"

/** The SHA-256 of a file's bytes, hex. */
export const hash = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex")

/** The SQLite side files (`-wal`, `-shm`) that exist beside `path`. */
export const sideFiles = (path: string): Array<string> => [`${path}-wal`, `${path}-shm`].filter((f) => existsSync(f))
