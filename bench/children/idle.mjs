// The floor of the idle bench: a Node process that only answers the runner over IPC.
import { serve } from "../lib/child.mjs"

serve({}, {})
