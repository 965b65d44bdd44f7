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
 * KEYS: stream. ARGV: consumer group, the group queue's limit, its overflow
 * policy (`refuse` or `drop-oldest`), then the encoded messages. Each
 * message is one entry (field `m` only: `n` absent is 0, and every field
 * costs Redis and each reader), added in ARGV's order (a publisher's order).
 * The limit counts the entries waiting for a node to read them, as a
 * single node counts its group's queue: the stream's length less the
 * entries read and not yet acknowledged (in flight to members). While that
 * is at the limit, `refuse` does not add the message, and `drop-oldest`
 * deletes the oldest waiting entry (the first after the consumer group's
 * last read) first. The length alone is read per message (O(1)); the rest
 * only when the stream is that long. One call per group and event-loop
 * turn: Redis' cost and the node's are mostly per command, not per entry.
 * Returns {added, dropped}.
 */
export const ADD = new Script(`
local max = tonumber(ARGV[2])
local refuse = ARGV[3] == 'refuse'
local added, dropped = 0, 0
local function waitingAndLast (len)
  local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
  if type(groups) ~= 'table' or groups.err then return len, '0-0' end
  for _, g in ipairs(groups) do
    local f = {}
    for j = 1, #g, 2 do f[g[j]] = g[j + 1] end
    if f['name'] == ARGV[1] then return len - f['pending'], f['last-delivered-id'] end
  end
  return len, '0-0'
end
for i = 4, #ARGV do
  local take = true
  local len = redis.call('XLEN', KEYS[1])
  if len >= max then
    local waiting, last = waitingAndLast(len)
    if waiting >= max then
      dropped = dropped + 1
      if refuse then
        take = false
      else
        local oldest = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 1)
        if #oldest > 0 then redis.call('XDEL', KEYS[1], oldest[1][1]) end
      end
    end
  end
  if take then
    redis.call('XADD', KEYS[1], '*', 'm', ARGV[i])
    added = added + 1
  end
end
return {added, dropped}
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

/**
 * KEYS: stream. ARGV: consumer group, consumer. The consumer is deleted if
 * it holds nothing (a member's session whose QoS 2 messages were settled):
 * checked in the same step, so an entry it takes meanwhile is never dropped
 * with it. Returns 1 when deleted.
 */
export const DROP_IDLE = new Script(`
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(consumers) ~= 'table' or consumers.err then return 0 end
for _, c in ipairs(consumers) do
  local f = {}
  for j = 1, #c, 2 do f[c[j]] = c[j + 1] end
  if f['name'] == ARGV[2] then
    if f['pending'] ~= 0 then return 0 end
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
    return 1
  end
end
return 0
`)

/**
 * KEYS: stream. ARGV: consumer group, the consumer of an ended session
 * (`$session/{client id}`). The QoS 2 messages that session held are sent to
 * no other member [MQTT-4.8.2-5]: its pending entries are acknowledged and
 * deleted, and the consumer goes; the number of entries settled.
 */
export const SETTLE_SESSION = new Script(`
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 10000, ARGV[2])
if type(pending) ~= 'table' or pending.err then return 0 end
for _, e in ipairs(pending) do
  redis.call('XACK', KEYS[1], ARGV[1], e[1])
  redis.call('XDEL', KEYS[1], e[1])
end
redis.pcall('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return #pending
`)
