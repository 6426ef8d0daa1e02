import { execFile } from "node:child_process"

/** Runs one SQL statement with `psql` (bounded); resolves with its unaligned output. */
export const psql = (url: string, sql: string): Promise<string> =>
  new Promise<string>((resolve, reject) =>
    execFile(
      "psql",
      [url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
      { timeout: 15_000, env: { ...process.env, PGCONNECT_TIMEOUT: "5" } },
      (error, stdout, stderr) =>
        error ? reject(new Error(`${stderr.trim().split("\n")[0] || error.message}`)) : resolve(stdout)
    )
  )
