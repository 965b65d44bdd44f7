// The session parts' own tests (test/persistence/parts/) again, with every
// write going through the Redis store's backend (lib/persistence/redis-sessions.ts)
// to a real redis-server: what a part writes must come back from its session's
// hash as it went in. The parts that write no session key (retained messages,
// shared groups, the body cache alone) have nothing in Redis and are not run here.
import '../helpers/parts-on-redis.js'
import './parts/subscriptions.test.js'
import './parts/session-queues.test.js'
import './parts/queue-index.test.js'
import './parts/queue-drain.test.js'
import './parts/incoming.test.js'
import './parts/wills.test.js'
import './parts/sessions.test.js'
