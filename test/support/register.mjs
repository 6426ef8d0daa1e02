// `node --import <this file> script.mjs`: installs resolve-hook.mjs (see there).
import { register } from "node:module"

register("./resolve-hook.mjs", import.meta.url)
