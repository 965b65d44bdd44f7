#!/usr/bin/env node
/**
 * The culex command: `culex [options]` runs the broker; `culex passwd` edits
 * a password file. Exit status: 0 ok, 1 runtime failure, 2 bad usage or
 * configuration (one line on stderr naming the field).
 */
import { Command, CommanderError, Option } from 'commander'
import { loadConfig, flagName, envName, type RawSettings } from '../lib/config/load.js'
import { configKeys, type Config } from '../lib/config/schema.js'
import { startServer, type CulexServer } from '../lib/server.js'
import { createLogger } from '../lib/logging.js'
import { isCulexError } from '../lib/errors.js'
import { version } from '../lib/version.js'

const descriptions: Partial<Record<keyof Config, string>> = {
  port: 'MQTT over TCP port (0 = off, "auto" = any free port)',
  wsPort: 'MQTT over WebSocket port, also serves HTTP endpoints (0 = off)',
  tlsPort: 'MQTT over TLS port, needs --tls-key and --tls-cert (0 = off)',
  wssPort: 'MQTT over secure WebSocket port, needs --tls-key and --tls-cert (0 = off)',
  host: 'address every listener binds to (default loopback only)',
  dataDir: 'directory of the LevelDB store',
  logLevel: 'fatal, error, warn, info, debug, trace or silent',
  persistence: 'level (durable, default) or memory',
  fsync: 'sync every store write to disk (survives power loss)',
  wsPath: 'path of the WebSocket endpoint',
  tlsKey: 'PEM private key file for TLS and WSS',
  tlsCert: 'PEM certificate file for TLS and WSS',
  tlsCa: 'PEM CA file (client certificates)',
  maximumPacketSize: 'largest packet accepted, in bytes (0 = no limit)',
  receiveMaximum: 'QoS 1/2 messages a client may have in flight to culex',
  topicAliasMaximum: 'topic aliases a v5 client may use (0 = off)',
  maximumQoS: 'highest QoS culex accepts and grants (0, 1 or 2)',
  wildcardSubscriptionAvailable: 'allow wildcard subscriptions',
  subscriptionIdentifierAvailable: 'allow subscription identifiers',
  maxTopicLevels: 'most levels in a topic or filter',
  maxTopicLength: 'longest topic or filter, in bytes',
  connectTimeout: 'seconds a new connection has to send CONNECT'
}

/** Options that are switches: `--fsync` alone means true. */
const switches = new Set<keyof Config>(['fsync', 'wildcardSubscriptionAvailable', 'subscriptionIdentifierAvailable'])

function usageError (message: string): never {
  process.stderr.write(`culex: ${message}\n`)
  process.exit(2)
}

function buildProgram (): Command {
  const program = new Command('culex')
    .description('culex: an MQTT 5 / 3.1.1 broker')
    .version(version, '-v, --version')
    .option('-c, --config <file>', 'JSON configuration file (env CULEX_CONFIG)')
    .exitOverride()
    .configureOutput({ writeErr: () => {} })
    .allowExcessArguments(false)
  for (const key of configKeys) {
    const flag = flagName(key)
    const arg = switches.has(key) ? '[bool]' : '<value>'
    program.addOption(new Option(`${flag} ${arg}`, `${descriptions[key] ?? key} (env ${envName(key)})`))
  }
  return program
}

async function runBroker (opts: Record<string, unknown>): Promise<void> {
  const flags: RawSettings = {}
  for (const key of configKeys) if (opts[key] !== undefined) flags[key] = opts[key]
  let config: Config
  try {
    config = await loadConfig({ flags, env: process.env, file: opts.config as string | undefined })
  } catch (err) {
    if (isCulexError(err)) usageError(err.message)
    throw err
  }
  const logger = createLogger({ level: config.logLevel })
  let server: CulexServer
  try {
    server = await startServer(config, { logger })
  } catch (err) {
    logger.fatal({ err }, 'culex could not start')
    process.stderr.write(`culex: ${(err as Error).message}\n`)
    process.exit(1)
  }
  logger.info({ version, persistence: config.persistence, dataDir: config.dataDir }, 'culex started')

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    logger.info({ signal }, 'shutting down')
    const force = setTimeout(() => {
      logger.error('shutdown took too long; exiting')
      process.exit(1)
    }, 5000)
    force.unref()
    server.close().then(() => {
      logger.flush()
      process.exit(0)
    }, (err: unknown) => {
      logger.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGHUP', () => {
    logger.info('SIGHUP: reloading the password file and ACL')
    server.reload().catch(() => { /* logged by reload; the old configuration stays */ })
  })
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
}

async function main (argv: string[]): Promise<void> {
  if (argv[2] === 'passwd') {
    const { runPasswdCommand } = await import('../lib/auth/passwd-command.js')
    const code = await runPasswdCommand(argv.slice(3), {
      stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, isTTY: process.stdin.isTTY === true
    })
    process.exit(code)
  }
  const program = buildProgram()
  try {
    program.parse(argv)
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(0)
      usageError(err.message.replace(/^error: /, ''))
    }
    throw err
  }
  await runBroker(program.opts())
}

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`culex: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
