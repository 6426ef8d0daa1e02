/**
 * @since 0.1.0
 */
export * as HttpCloudTransport from "./HttpCloudTransport.js"

/**
 * @since 0.1.0
 */
export * as SyncApi from "./SyncApi.js"
