/**
 * The log the lease tests' workers write around every push (`start <owner> <ms>` before it,
 * `end <owner> <ms>` after it; other lines are ignored), read back as pushes, so a test can
 * check that no two owners' pushes overlap.
 */
import { existsSync, readFileSync } from "node:fs"

/** One push; `end` is undefined while it is still running (or its process was killed). */
export interface Push {
  readonly owner: string
  readonly start: number
  end: number | undefined
}

/** The pushes the lines tell of, and the ones still open per owner. Throws on an `end` without a `start`. */
export const parsePushes = (
  lines: ReadonlyArray<string>
): { readonly pushes: Array<Push>; readonly open: Map<string, Push> } => {
  const pushes: Array<Push> = []
  const open = new Map<string, Push>()
  for (const line of lines) {
    const [what, owner, ms] = line.split(" ")
    if (what === "start") {
      const push: Push = { owner, start: Number(ms), end: undefined }
      pushes.push(push)
      open.set(owner, push)
    } else if (what === "end") {
      const push = open.get(owner)
      if (push === undefined) throw new Error(`an end without a start: ${line}`)
      push.end = Number(ms)
      open.delete(owner)
    }
  }
  return { pushes, open }
}

/** The non-empty lines of a file; none when it does not exist yet. */
export const readLines = (path: string): Array<string> =>
  existsSync(path) ? readFileSync(path, "utf8").split("\n").filter((l) => l.length > 0) : []
