import { CloudTransportHarness as Harness, CloudTransportSuite, layerMemoryHarness } from "@autosync/testkit"
import { Effect, Layer } from "effect"
import { layerMemoryServer, layerSqliteServer, TestServer } from "./helpers.js"

const fromServer = <E>(server: Layer.Layer<TestServer, E>): Layer.Layer<Harness, E> =>
  Layer.effect(Harness, Effect.map(TestServer, (s) => ({ transport: s.transport }))).pipe(Layer.provide(server))

CloudTransportSuite("core memory server", layerMemoryHarness)
CloudTransportSuite("HttpCloudTransport → SyncServer (memory log)", fromServer(layerMemoryServer()))
CloudTransportSuite("HttpCloudTransport → SyncServer (SQLite log)", fromServer(layerSqliteServer()))
