/**
 * The one module that loads ioredis' code (lib/cluster/redis.ts and
 * lib/persistence/redis.ts take `Redis`, and redis.ts `Cluster`, from here).
 *
 * ioredis 6 declares `class VerbatimString extends String` for its RESP3
 * decoder. In V8 11 (Node 20) declaring that subclass leaves
 * `String.prototype` as a dictionary-mode object, and optimized code then
 * looks every string method (`topic.indexOf`, `startsWith`, `charCodeAt`)
 * up through a generic inline cache, in the whole process, cluster or not:
 * such calls take about 2.9 times as long, and a fan-in QoS 1 message about
 * 7% more instructions in the broker (benchmarks/README.md, "String
 * methods and ioredis"). One method call on an instance of that class lets
 * V8 set `String.prototype` up as a fast prototype again.
 * test/cluster/ioredis.test.ts fails if ioredis or Node change any of this.
 */
import { VerbatimString } from 'ioredis/built/resp/verbatim-string.js'

export { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'

new VerbatimString('txt', '').indexOf('')
