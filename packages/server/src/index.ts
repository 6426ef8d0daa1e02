/**
 * @since 0.1.0
 */
export * as Activity from "./Activity.js"

/**
 * @since 0.1.0
 */
export * as Clients from "./Clients.js"

/**
 * @since 0.1.0
 */
export * as Dashboard from "./Dashboard.js"

/**
 * @since 0.1.0
 */
export * as Admission from "./Admission.js"

/**
 * @since 0.1.0
 */
export * as Compactor from "./Compactor.js"

/**
 * @since 0.1.0
 */
export * as MutationLog from "./MutationLog.js"

/**
 * @since 0.1.0
 */
export * as PgMutationLog from "./PgMutationLog.js"

/**
 * @since 0.1.0
 */
export * as ServerMetrics from "./ServerMetrics.js"

/**
 * @since 0.1.0
 */
export * as SqliteMutationLog from "./SqliteMutationLog.js"

/**
 * @since 0.1.0
 */
export * as SyncServer from "./SyncServer.js"

/**
 * @since 0.1.0
 */
export * as Tokens from "./Tokens.js"
