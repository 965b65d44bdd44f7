/**
 * Gathers configuration from the CLI flags, CULEX_* environment variables
 * and a JSON file, validates each source against the one schema (so an error
 * names the field and where it came from), and merges them:
 * flags > env > file > defaults.
 */
import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { ConfigSchema, configKeys, type Config } from './schema.js'
import { CulexError } from '../errors.js'

export type RawSettings = Partial<Record<keyof Config, unknown>>

export interface ConfigSources {
  /** values given on the command line, keyed by config field */
  flags?: RawSettings
  env?: Record<string, string | undefined>
  /** path of a JSON config file (also CULEX_CONFIG) */
  file?: string | undefined
}

/** `wsPort` -> `CULEX_WS_PORT` */
export function envName (key: string): string {
  return 'CULEX_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase()
}

/** `wsPort` -> `--ws-port` */
export function flagName (key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())
}

export function fromEnv (env: Record<string, string | undefined>): RawSettings {
  const out: RawSettings = {}
  for (const key of configKeys) {
    const value = env[envName(key)]
    if (value !== undefined && value !== '') out[key] = value
  }
  return out
}

const Partial = ConfigSchema.partial()

function check (settings: RawSettings, describe: (key: string) => string): void {
  const result = Partial.safeParse(settings)
  if (result.success) return
  const issue = result.error.issues[0] as z.core.$ZodIssue
  const key = String(issue.path[0] ?? '')
  const where = key ? `${key} (${describe(key)})` : describe('')
  throw new CulexError('CULEX_CONFIG_INVALID', `${where}: ${issue.message}`)
}

export async function readConfigFile (path: string): Promise<RawSettings> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new CulexError('CULEX_CONFIG_FILE', `${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (err) {
    throw new CulexError('CULEX_CONFIG_FILE', `${path}: not valid JSON (${(err as Error).message})`)
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new CulexError('CULEX_CONFIG_FILE', `${path}: expected a JSON object`)
  }
  return data as RawSettings
}

export async function loadConfig (sources: ConfigSources): Promise<Config> {
  const env = sources.env ?? {}
  const flags = sources.flags ?? {}
  const envSettings = fromEnv(env)
  const filePath = sources.file ?? env.CULEX_CONFIG
  const fileSettings = filePath ? await readConfigFile(filePath) : {}

  check(fileSettings, (key) => `in ${filePath ?? 'config file'}`)
  check(envSettings, (key) => envName(key))
  check(flags, (key) => flagName(key))

  const merged = { ...fileSettings, ...envSettings, ...flags }
  const result = ConfigSchema.safeParse(merged)
  if (!result.success) {
    const issue = result.error.issues[0] as z.core.$ZodIssue
    throw new CulexError('CULEX_CONFIG_INVALID', `${issue.path.join('.') || 'config'}: ${issue.message}`)
  }
  return result.data
}
