/**
 * The Lua scripts of the shared groups' streams (shared-stream.ts). Each
 * touches one key, the group's stream, so each runs on a Redis Cluster's
 * master of that group.
 */
import { Script } from './script.js'

/**
 * Lua: an entry of stream `key` goes to its end, with `message` (or its own)
 * and its uncounted deliveries plus `more`; 1 when it was there, 0 when not.
 */
const TO_END = `
local function toEnd (key, id, message, more)
  local e = redis.call('XRANGE', key, id, id)
  redis.call('XDEL', key, id)
  if #e == 0 then return 0 end
  local f = e[1][2]
  local m, u = nil, 0
  for j = 1, #f, 2 do
    if f[j] == 'm' then m = f[j + 1] elseif f[j] == 'n' then u = tonumber(f[j + 1]) end
  end
  redis.call('XADD', key, '*', 'm', message or m, 'n', u + more)
  return 1
end
`

/**
 * KEYS: stream. ARGV: consumer group, then pairs (id, encoded message or '').
 * An entry still pending goes back to the end of the stream with its
 * message (the given one, which counts the deliveries made, or its own).
 */
export const REQUEUE = new Script(`${TO_END}
local n = 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('XACK', KEYS[1], ARGV[1], id) == 1 then
    if ARGV[i + 1] ~= '' then n = n + toEnd(KEYS[1], id, ARGV[i + 1], 0) else n = n + toEnd(KEYS[1], id, nil, 1) end
  end
end
return n
`)

/**
 * KEYS: stream. ARGV: consumer group, consumer (a dead node), count. Its
 * pending entries go back to the end of the stream (each counted as one
 * delivery more); the consumer is deleted once it holds none. Returns how
 * many went back.
 */
export const REQUEUE_DEAD = new Script(`${TO_END}
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[3]), ARGV[2])
local n = 0
for i = 1, #p do
  local id = p[i][1]
  redis.call('XACK', KEYS[1], ARGV[1], id)
  n = n + toEnd(KEYS[1], id, nil, 1)
end
if #p < tonumber(ARGV[3]) then redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) end
return n
`)

/**
 * KEYS: stream. ARGV: consumer group, consumer. This node leaves the group:
 * what is still pending for it (a read Redis answered as the node closed its
 * connection) goes back to the end of the stream first, never deleted with
 * the consumer. Returns 1 when no consumer is left, and then the stream is
 * deleted: the group has no member anywhere.
 */
export const LEAVE = new Script(`${TO_END}
if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 1000, ARGV[2])
if type(p) == 'table' and p.err then return 1 end
for i = 1, #p do
  local id = p[i][1]
  redis.call('XACK', KEYS[1], ARGV[1], id)
  toEnd(KEYS[1], id, nil, 0)
end
if #p == 1000 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
if #redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1]) == 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

/**
 * KEYS: stream. ARGV: MAXLEN, then the encoded messages. Each message is
 * one entry (field `m` only: `n` absent is 0, and every field costs Redis
 * and each reader), added in ARGV's order (a publisher's order); the stream is
 * trimmed to about MAXLEN (drop-oldest). One call per group and event-loop
 * turn: Redis' cost and the node's are mostly per command, not per entry.
 */
export const ADD = new Script(`
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[i])
end
return #ARGV - 1
`)

/**
 * KEYS: stream. ARGV: consumer group, then the ids of finished entries:
 * acknowledged and deleted in one call (the stream holds only what is
 * waiting or in flight).
 */
export const ACK = new Script(`
redis.call('XACK', KEYS[1], unpack(ARGV))
return redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
`)
