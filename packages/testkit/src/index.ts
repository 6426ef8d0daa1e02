/**
 * Conformance suites for your own backends: the same tests autosync runs against its memory,
 * SQLite and PostgreSQL implementations, to run (with vitest) against yours.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export { LocalStoreSuite } from "./LocalStoreSuite.js"

/**
 * @since 0.1.0
 */
export { CloudTransportSuite, Harness as CloudTransportHarness, layerMemoryHarness } from "./CloudTransportSuite.js"

/**
 * @since 0.1.0
 */
export { MutationLogSuite } from "./MutationLogSuite.js"

/**
 * @since 0.1.0
 */
export * as Fixtures from "./Fixtures.js"
