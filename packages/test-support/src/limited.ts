/**
 * Runs `tasks` with at most `n` at a time, the results in the tasks' order. For tests that
 * start a node process per task: the machine may have two cores, shared with other suites.
 */
export const limited = async <A>(n: number, tasks: ReadonlyArray<() => Promise<A>>): Promise<Array<A>> => {
  const results: Array<A> = new Array(tasks.length)
  let next = 0
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < tasks.length) {
      const i = next++
      results[i] = await tasks[i]()
    }
  }))
  return results
}
