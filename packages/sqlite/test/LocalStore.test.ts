import { LocalStore } from "@autosync/core"
import { LocalStoreSuite } from "@autosync/testkit"
import { layerTempFile } from "./utils.js"

LocalStoreSuite("LocalStore.layerMemory", LocalStore.layerMemory)
LocalStoreSuite("SqliteLocalStore on a temporary file", layerTempFile)
