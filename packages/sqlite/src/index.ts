/**
 * @since 0.1.0
 */
export * as Applier from "./Applier.js"

/**
 * @since 0.1.0
 */
export * as Documents from "./Documents.js"

/**
 * @since 0.1.0
 */
export * as ReplicaFile from "./ReplicaFile.js"

/**
 * @since 0.1.0
 */
export * as SqliteLocalStore from "./SqliteLocalStore.js"

/**
 * @since 0.1.0
 */
export * as SqliteMigrations from "./SqliteMigrations.js"
