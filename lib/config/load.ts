/**
 * Gathers configuration from the CLI flags, CULEX_* environment variables
 * and a JSON file, validates each source against the one schema (so an error
 * names the field and where it came from), and merges them:
 * flags > env > file > defaults.
 */
import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { ConfigSchema, configKeys, type Config } from './schema.js'
import { closest, envName, flagName } from './names.js'
import { CulexError } from '../errors.js'

export type RawSettings = Partial<Record<keyof Config, unknown>>

export interface ConfigSources {
  /** values given on the command line, keyed by config field */
  flags?: RawSettings
  env?: Record<string, string | undefined>
  /** path of a JSON config file (also CULEX_CONFIG) */
  file?: string | undefined
}

export { envName, flagName } from './names.js'

/** Variables of culex's own that name no setting. */
const OTHER_VARIABLES = new Set(['CULEX_CONFIG'])

export interface UnknownVariable {
  name: string
  /** the valid variable it most likely meant */
  suggestion?: string
}

/**
 * CULEX_* variables that name no setting: a misspelt one would otherwise be
 * ignored without a word, and the broker run with a default the operator
 * thought they had changed.
 */
export function unknownEnvVariables (env: Record<string, string | undefined>): UnknownVariable[] {
  const valid = new Set([...configKeys.map(envName), ...OTHER_VARIABLES])
  const out: UnknownVariable[] = []
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('CULEX_') || valid.has(name)) continue
    const suggestion = closest(name, valid, 'CULEX_')
    out.push(suggestion === undefined ? { name } : { name, suggestion })
  }
  return out
}

/** The one line a warning about an unknown variable is. */
export function unknownVariableMessage (v: UnknownVariable): string {
  return `${v.name} is not a culex setting and is ignored` + (v.suggestion === undefined ? '' : `; did you mean ${v.suggestion}?`)
}

export function fromEnv (env: Record<string, string | undefined>): RawSettings {
  const out: RawSettings = {}
  for (const key of configKeys) {
    const value = env[envName(key)]
    if (value !== undefined && value !== '') out[key] = value
  }
  return out
}

const shape: Record<string, z.ZodType> = ConfigSchema.shape

/** `sharedStrategies` + `[0, 'pattern']` -> `sharedStrategies[0].pattern` */
function fieldPath (key: string, path: ReadonlyArray<PropertyKey>): string {
  return key + path.map((p) => typeof p === 'number' ? `[${p}]` : `.${String(p)}`).join('')
}

/**
 * Validates each setting of one source on its own, so that an error names
 * the field and where it came from, whatever went wrong in its schema.
 */
function check (settings: Record<string, unknown>, describe: (key: string) => string): void {
  for (const [key, value] of Object.entries(settings)) {
    const schema = Object.hasOwn(shape, key) ? shape[key] : undefined
    if (schema === undefined) {
      const suggestion = closest(key, configKeys)
      throw new CulexError('CULEX_ERR_CONFIG_INVALID', [`${key} (${describe(key)}): not a culex setting` + (suggestion === undefined ? '' : `; did you mean ${suggestion}?`)])
    }
    let message: string
    try {
      const result = schema.safeParse(value)
      if (result.success) continue
      const issue = result.error.issues[0] as z.core.$ZodIssue
      message = `${fieldPath(key, issue.path)} (${describe(key)}): ${issue.message}`
    } catch (err) {
      message = `${key} (${describe(key)}): ${(err as Error).message}`
    }
    throw new CulexError('CULEX_ERR_CONFIG_INVALID', [message])
  }
}

export async function readConfigFile (path: string): Promise<RawSettings> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new CulexError('CULEX_ERR_CONFIG_FILE', [`${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`])
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (err) {
    throw new CulexError('CULEX_ERR_CONFIG_FILE', [`${path}: not valid JSON (${(err as Error).message})`])
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new CulexError('CULEX_ERR_CONFIG_FILE', [`${path}: expected a JSON object`])
  }
  return data as RawSettings
}

export async function loadConfig (sources: ConfigSources): Promise<Config> {
  const env = sources.env ?? {}
  const flags = sources.flags ?? {}
  const envSettings = fromEnv(env)
  const filePath = sources.file ?? env.CULEX_CONFIG
  const fileSettings = filePath ? await readConfigFile(filePath) : {}

  check(fileSettings, () => `in ${filePath ?? 'config file'}`)
  check(envSettings, (key) => envName(key))
  check(flags, (key) => flagName(key))

  const merged = { ...fileSettings, ...envSettings, ...flags }
  const result = ConfigSchema.safeParse(merged)
  if (!result.success) {
    const issue = result.error.issues[0] as z.core.$ZodIssue
    throw new CulexError('CULEX_ERR_CONFIG_INVALID', [`${issue.path.join('.') || 'config'}: ${issue.message}`])
  }
  return result.data
}
