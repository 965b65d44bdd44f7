/**
 * The culex command's options, made from the schema: one flag per setting
 * with the schema's description, its default and its environment variable,
 * so that `culex --help`, the schema and the README's table (checked by
 * test/e2e/cli/readme-config.test.ts) cannot drift apart.
 */
import { Command, Option } from 'commander'
import { z } from 'zod'
import { ConfigSchema, configKeys, type Config } from './schema.js'
import { envName, flagName } from './names.js'
import type { RawSettings } from './load.js'

/** Shown after the options by `culex --help`. */
export const COMMANDS_HELP = `
Commands:
  culex passwd [-D] [--password PASS] FILE USER
      add a user to a password file or change its password; -D deletes it
      (see culex passwd --help)
  culex repair [--data-dir DIR] [--config FILE]
      repair a damaged LevelDB data directory, keeping what can be kept,
      and report what the store holds afterwards (see culex repair --help)

Every option can also be given as its CULEX_* environment variable or as its
key in the --config JSON file; flags > environment > file > defaults.
`

const defaults = ConfigSchema.parse({}) as Record<string, unknown>

/** How a default reads in the help: `1883`, `/mqtt` (strings unquoted), `[]`, or `unset`. */
export function defaultText (key: keyof Config): string {
  const value = defaults[key]
  if (value === undefined) return 'unset'
  return typeof value === 'string' ? value : JSON.stringify(value)
}

/** true for settings that are booleans: their flag alone means true (`--fsync`). */
function isSwitch (key: keyof Config): boolean {
  const schema: z.ZodType = ConfigSchema.shape[key]
  return schema.safeParse('on').data === true && schema.safeParse('off').data === false
}

export interface CulexProgram {
  program: Command
  /** the settings given as flags, by config key, after `program.parse()` */
  flags: () => RawSettings
}

export function buildProgram (version: string): CulexProgram {
  const program = new Command('culex')
    .description('culex: an MQTT 5 / 3.1.1 broker')
    .version(version, '-v, --version')
    .option('-c, --config <file>', 'JSON configuration file (env CULEX_CONFIG)')
    .exitOverride()
    .configureOutput({ writeErr: () => {} })
    .allowExcessArguments(false)
    .addHelpText('after', COMMANDS_HELP)
  // commander camelCases a flag its own way (`--maximum-qos` -> maximumQos): map back to the key
  const keyOf = new Map<string, keyof Config>()
  for (const key of configKeys) {
    const schema: z.ZodType = ConfigSchema.shape[key]
    const arg = isSwitch(key) ? '[bool]' : '<value>'
    const option = new Option(`${flagName(key)} ${arg}`, `${schema.description ?? key} (default: ${defaultText(key)}; env ${envName(key)})`)
    keyOf.set(option.attributeName(), key)
    program.addOption(option)
  }
  const flags = (): RawSettings => {
    const opts = program.opts<Record<string, unknown>>()
    const out: RawSettings = {}
    for (const [attribute, key] of keyOf) if (opts[attribute] !== undefined) out[key] = opts[attribute]
    return out
  }
  return { program, flags }
}
