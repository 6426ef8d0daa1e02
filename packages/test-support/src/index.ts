/**
 * Helpers shared by the workspace's own tests (`packages/*\/test` and `test/`): private, never
 * published. One home for what several suites need, so a fix lands once.
 */
export * from "./files.js"
export * from "./limited.js"
export * from "./psql.js"
export * from "./pushLog.js"
