// A module resolve hook for the fixture scripts in test/fixtures. The workspace root does not
// depend on `effect` or `@effect/*` (only the packages do), so a script under test/ cannot import
// them by name. This hook retries such a bare specifier as if it were imported from
// packages/cli, which depends on every one of them: the script then gets the very same module
// instances the built @autosync packages use.
const fallbackParent = new URL("../../packages/cli/package.json", import.meta.url).href

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context)
  } catch (error) {
    if (error?.code !== "ERR_MODULE_NOT_FOUND" || !/^(effect|@effect\/)/.test(specifier)) throw error
    return nextResolve(specifier, { ...context, parentURL: fallbackParent })
  }
}
