/**
 * @since 0.1.0
 */
export * as Admission from "./Admission.js"
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
