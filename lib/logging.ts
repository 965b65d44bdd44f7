/**
 * pino, JSON lines on stdout; readable lines (pino-pretty) when stdout is a
 * terminal. Every connection logs through a child bound to its clientId.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino'

export type { Logger }

export interface LoggerOptions {
  level: LevelWithSilent
  /** default: stdout is a terminal */
  pretty?: boolean
}

export function createLogger (opts: LoggerOptions): Logger {
  const pretty = opts.pretty ?? (process.stdout.isTTY === true)
  if (pretty) {
    return pino({
      level: opts.level,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } }
    })
  }
  return pino({ level: opts.level, base: { name: 'culex' } })
}

export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}
