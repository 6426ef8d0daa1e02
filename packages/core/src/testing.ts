/**
 * Test tools, kept out of the main entry point (`@autosync/core/testing`): a transport that
 * injects network faults. The conformance suites are in `@autosync/testkit`.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as FaultyTransport from "./FaultyTransport.js"
