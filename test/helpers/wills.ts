import type { Test } from 'tap'
import type { MqttClient } from 'mqtt'
import type { CulexProcess } from './cli.js'
import { connectClient } from './mqtt.js'
import { routeReady, startCluster, type RedisProcess } from './redis.js'

/** A message's topic, payload, QoS and arrival time. */
export interface Arrival { topic: string, payload: string, qos: number, at: number }

/** Each message `client` receives, as it arrives. */
export function arrivals (client: MqttClient): Arrival[] {
  const got: Arrival[] = []
  client.on('message', (topic, payload, packet) => { got.push({ topic, payload: payload.toString(), qos: packet.qos, at: Date.now() }) })
  return got
}

export const count = (got: Array<{ topic: string }>, topic: string): number => got.filter((m) => m.topic === topic).length

export interface WatchedNodes {
  redis: RedisProcess
  a: CulexProcess
  b: CulexProcess
  c: CulexProcess
  gotB: Arrival[]
  gotC: Arrival[]
}

/**
 * A Redis and nodes a, b and c, with a watcher of `wills/#` at `qos` on b
 * (MQTT 5) and one on c (3.1.1), each one's route in place on the other's
 * node: whichever survivor publishes a will reaches both.
 */
export async function watchedNodes (t: Test, qos: 0 | 1): Promise<WatchedNodes> {
  const { redis, nodes: [a, b, c] } = await startCluster(t, ['a', 'b', 'c'])
  const onB = await connectClient(t, b.url, { clientId: 'watch-b', protocolVersion: 5 })
  const onC = await connectClient(t, c.url, { clientId: 'watch-c', protocolVersion: 4 })
  const gotB = arrivals(onB)
  const gotC = arrivals(onC)
  await onB.subscribeAsync('wills/#', { qos })
  await onC.subscribeAsync('wills/#', { qos })
  await routeReady(onB, 'wills/probe-b', () => count(gotC, 'wills/probe-b') > 0)
  await routeReady(onC, 'wills/probe-c', () => count(gotB, 'wills/probe-c') > 0)
  return { redis, a, b, c, gotB, gotC }
}
