/**
 * pino, JSON lines on stdout; readable lines (pino-pretty) when stdout is a
 * terminal. Every connection logs through a child bound to its clientId.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino'
import { repeatedLog, type RepeatedLevel } from './repeated-log.js'

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
  // Synchronous writes to fd 1. pino's default asynchronous destination
  // flushes synchronously at exit, and sonic-boom's flushSync retries a
  // failed write forever: with stdout a closed pipe (`culex | head`) and a
  // line still in flight, the exit after SIGTERM spun on EPIPE and no signal
  // could end the process. Written synchronously, the first EPIPE reaches
  // pino's handler at once, which stops logging, and nothing is left to
  // flush at exit.
  return pino({ level: opts.level, base: { name: 'culex' } }, pino.destination({ dest: 1, sync: true }))
}

export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}

type LevelName = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'

/** What a connection's log lines are bound to before its clientId is known. */
export interface ConnectionOrigin {
  readonly transport: string
  readonly remoteAddress: string | undefined
}

/**
 * A connection's logger: the pino child bound to the connection (transport,
 * remote address, then clientId) is created by the first message logged at
 * an enabled level, not when the connection opens. Most connections never
 * log above the configured level, and a child with its serialized bindings
 * is about a kilobyte per connection (measured with a sampling heap profile
 * over 3000 idle connections). Until then it keeps only the connection's
 * origin and clientId, no bindings object.
 */
export class ConnectionLogger {
  private child: Logger | undefined = undefined
  private clientId: string | undefined = undefined
  private more: Record<string, unknown> | undefined = undefined

  constructor (private readonly parent: Logger, private readonly origin: ConnectionOrigin) {}

  /** Adds bindings to every later message (the clientId once CONNECT is read). */
  bind (more: Record<string, unknown>): void {
    if (this.child) {
      this.child = this.child.child(more)
      return
    }
    const keys = Object.keys(more)
    if (keys.length === 1 && keys[0] === 'clientId' && this.more === undefined) {
      this.clientId = more.clientId as string | undefined
      return
    }
    this.more = { clientId: this.clientId, ...this.more, ...more }
    this.clientId = undefined
  }

  /** The pino child itself, created if it does not exist yet. */
  get logger (): Logger {
    this.child ??= this.parent.child({
      transport: this.origin.transport,
      remote: this.origin.remoteAddress,
      ...(this.more ?? { clientId: this.clientId })
    })
    return this.child
  }

  isLevelEnabled (level: LevelName): boolean { return this.parent.isLevelEnabled(level) }

  /**
   * An event that can repeat per message or packet: the first is written at
   * once, repeats of the same `key` on this connection are written as one
   * line with their count per interval (lib/repeated-log.ts).
   */
  repeated (level: RepeatedLevel, key: string, fields: Record<string, unknown>, msg: string, count = 1): void {
    repeatedLog.log(this, level, key, fields, msg, count)
  }

  trace (obj: object, msg?: string): void { this.write('trace', obj, msg) }
  debug (obj: object, msg?: string): void { this.write('debug', obj, msg) }
  info (obj: object, msg?: string): void { this.write('info', obj, msg) }
  warn (obj: object, msg?: string): void { this.write('warn', obj, msg) }
  error (obj: object, msg?: string): void { this.write('error', obj, msg) }

  private write (level: LevelName, obj: object, msg: string | undefined): void {
    if (!this.parent.isLevelEnabled(level)) return
    if (msg === undefined) this.logger[level](obj)
    else this.logger[level](obj, msg)
  }
}
