/**
 * @since 0.1.0
 */
export * as Backoff from "./Backoff.js"

/**
 * @since 0.1.0
 */
export * as CloudTransport from "./CloudTransport.js"

/**
 * @since 0.1.0
 */
export * as DatabaseKind from "./DatabaseKind.js"

/**
 * @since 0.1.0
 */
export * as DirtySignal from "./DirtySignal.js"

/**
 * @since 0.1.0
 */
export * as LocalStore from "./LocalStore.js"

/**
 * @since 0.1.0
 */
export * as LogRules from "./LogRules.js"

/**
 * @since 0.1.0
 */
export * as Merge from "./Merge.js"

/**
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.js"

/**
 * @since 0.1.0
 */
export * as Mutation from "./Mutation.js"

/**
 * @since 0.1.0
 */
export * as Status from "./Status.js"

/**
 * @since 0.1.0
 */
export * as SyncConfig from "./SyncConfig.js"

/**
 * @since 0.1.0
 */
export * as SyncManager from "./SyncManager.js"
