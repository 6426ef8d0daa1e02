// A fresh PostgreSQL schema per use, for the server-scale bench; every schema created here is
// dropped at the end of the run.
import { randomUUID } from "node:crypto"
import { loadPg } from "./deps.mjs"

const created = new Set()

const withClient = async (url, f) => {
  const { Client } = loadPg()
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 3000 })
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end()
  }
}

/** `undefined` when reachable, else why not. */
export const unreachable = async (url) => {
  const host = new URL(url).hostname
  if (host !== "127.0.0.1" && host !== "localhost" && host !== "::1") {
    return `the bench only talks to 127.0.0.1, not ${host}`
  }
  try {
    await withClient(url, (c) => c.query("SELECT 1"))
    return undefined
  } catch (error) {
    return String(error?.message ?? error)
  }
}

/** A new schema; its URL sets `search_path` to it. */
export const freshSchema = async (url) => {
  const name = `autosync_bench_${randomUUID().replaceAll("-", "").slice(0, 12)}`
  await withClient(url, (c) => c.query(`CREATE SCHEMA ${name}`))
  created.add(name)
  const schemaUrl = new URL(url)
  schemaUrl.searchParams.set("options", `-c search_path=${name}`)
  return { name, url: schemaUrl.toString() }
}

export const dropSchema = async (url, name) => {
  await withClient(url, (c) => c.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`))
  created.delete(name)
}

export const dropAll = async (url) => {
  for (const name of [...created]) await dropSchema(url, name).catch(() => {})
}
