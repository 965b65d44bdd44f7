#!/usr/bin/env node
/**
 * The culex command: `culex [options]` runs the broker; `culex passwd` edits
 * a password file; `culex repair` repairs a damaged data directory. Exit
 * status: 0 ok, 1 runtime failure, 2 bad usage, configuration, a damaged
 * store or a cluster it cannot join (one line on stderr naming the field,
 * the damage or the cause).
 */
import { CommanderError } from 'commander'
import { loadConfig, unknownEnvVariables, unknownVariableMessage } from '../lib/config/load.js'
import { buildProgram } from '../lib/config/cli-options.js'
import type { Config } from '../lib/config/schema.js'
import type { RawSettings } from '../lib/config/load.js'
import { startServer, type CulexServer } from '../lib/server.js'
import { createLogger } from '../lib/logging.js'
import { isCulexError } from '../lib/errors.js'
import { version } from '../lib/version.js'

/** One line on stderr (commander's messages may span several), exit 2. */
function usageError (message: string): never {
  process.stderr.write(`culex: ${message.replace(/\s*\n\s*/g, ' ').trim()}\n`)
  process.exit(2)
}

async function runBroker (flags: RawSettings, file: string | undefined): Promise<void> {
  let config: Config
  try {
    config = await loadConfig({ flags, env: process.env, file })
  } catch (err) {
    if (isCulexError(err)) usageError(err.message)
    throw err
  }
  const logger = createLogger({ level: config.logLevel })
  for (const variable of unknownEnvVariables(process.env)) {
    logger.warn({ variable: variable.name, suggestion: variable.suggestion }, unknownVariableMessage(variable))
  }
  let server: CulexServer
  try {
    server = await startServer(config, { logger })
  } catch (err) {
    logger.fatal({ err }, 'culex could not start')
    process.stderr.write(`culex: ${(err as Error).message}\n`)
    // a damaged store is for the operator to repair, as a bad configuration is to fix; so is a cluster it cannot join
    const operatorFix = isCulexError(err, 'CULEX_ERR_STORE_DAMAGED') || isCulexError(err, 'CULEX_ERR_CLUSTER_UNREACHABLE') || isCulexError(err, 'CULEX_ERR_CLUSTER_NODE_ID_IN_USE') ||
      isCulexError(err, 'CULEX_ERR_CLUSTER_NOT_DURABLE')
    process.exit(operatorFix ? 2 : 1)
  }
  logger.info({ version, persistence: config.persistence, dataDir: config.dataDir, ...(server.cluster ? { nodeId: server.cluster.nodeId } : {}) }, 'culex started')

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
  if (argv[2] === 'repair') {
    const { runRepairCommand } = await import('../lib/persistence/repair-command.js')
    process.exit(await runRepairCommand(argv.slice(3), { stdout: process.stdout, stderr: process.stderr, env: process.env }))
  }
  const { program, flags } = buildProgram(version)
  try {
    program.parse(argv)
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(0)
      usageError(err.message.replace(/^error: /, ''))
    }
    throw err
  }
  await runBroker(flags(), program.opts<{ config?: string }>().config)
}

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`culex: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
