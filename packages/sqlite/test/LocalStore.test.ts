import { LocalStore } from "@autosync/core"
import { localStoreSuite } from "./LocalStoreSuite.js"
import { layerTempFile } from "./utils.js"

localStoreSuite("LocalStore.layerMemory", LocalStore.layerMemory)
localStoreSuite("SqliteLocalStore on a temporary file", layerTempFile)
