/**
 * A Lua script run by its SHA1 (EVALSHA), loaded again when Redis answers
 * NOSCRIPT (after a restart or SCRIPT FLUSH). Several keys change together
 * in one script, atomically.
 */
import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

export type ScriptArg = string | number | Buffer

export class Script {
  private readonly sha: string

  constructor (private readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex')
  }

  async run (redis: Redis, keys: readonly string[], args: readonly ScriptArg[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return await redis.eval(this.lua, keys.length, ...keys, ...args)
    }
  }
}
