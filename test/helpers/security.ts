/**
 * Helpers for the security tests (test/e2e/security/): temporary files, the
 * built `culex passwd`, raw CONNECTs that return the CONNACK whatever its
 * code, an in-process server whose log lines are kept, and the Prometheus
 * counters of a running server.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import http from 'node:http'
import type { Test } from 'tap'
import { pino } from 'pino'
import type mqtt from 'mqtt-packet'
import { RawClient } from './raw.js'
import { runCulex } from './cli.js'
import type { CulexServer } from '../../lib/server.js'
import { startTestServer } from './server.js'
import type { ConfigInput } from '../../lib/config/schema.js'

export type Version = 4 | 5

/** A temporary directory removed at teardown. */
export function tempDir (t: Test, prefix = 'culex-sec-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export function writeFile (dir: string, name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

/** `culex passwd ARGS` with the built CLI; fails the caller on a non-zero exit. */
export async function passwd (args: string[]): Promise<{ stdout: string, stderr: string }> {
  const result = await runCulex(['passwd', ...args])
  if (result.code !== 0) throw new Error(`culex passwd ${args.join(' ')} exited ${result.code}: ${result.stderr}`)
  return result
}

let counter = 0
export function uniqueId (prefix: string): string {
  return `${prefix}-${process.pid}-${++counter}`
}

export interface Connack { client: RawClient, connack: mqtt.IConnackPacket, code: number }

/** Opens a raw client and sends CONNECT; returns the CONNACK and its code (v5 reason code or 3.1.1 return code). */
export async function rawConnect (t: Test, port: number, version: Version, connect: Partial<mqtt.IConnectPacket> = {}, ms = 5000): Promise<Connack> {
  const client = await RawClient.open(port, version)
  t.teardown(() => client.destroy())
  client.send({ cmd: 'connect', protocolVersion: version, protocolId: 'MQTT', clientId: uniqueId('sec'), clean: true, keepalive: 60, ...connect } as mqtt.IConnectPacket)
  const connack = await client.next('connack', ms) as mqtt.IConnackPacket
  return { client, connack, code: (version === 5 ? connack.reasonCode : connack.returnCode) ?? 0 }
}

/** The CONNACK code of a raw CONNECT, the socket closed afterwards. */
export async function connackCode (t: Test, port: number, version: Version, connect: Partial<mqtt.IConnectPacket> = {}): Promise<number> {
  const { client, code } = await rawConnect(t, port, version, connect)
  client.destroy()
  return code
}

/** Starts culex in-process like startTestServer, keeping every JSON log line. */
export async function startLoggedServer (t: Test, overrides: ConfigInput = {}): Promise<{ server: CulexServer, logs: Array<Record<string, unknown>> }> {
  const logs: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
      }
      cb()
    }
  })
  const server = await startTestServer(t, overrides, { logger: pino({ level: 'info' }, sink) })
  return { server, logs }
}

/** GET `path` on the server's HTTP (WebSocket) listener. */
export function httpGet (server: CulexServer, path: string): Promise<{ status: number, body: string }> {
  if (!server.ws) throw new Error('no HTTP listener')
  const port = server.ws.address().port
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    }).on('error', reject)
  })
}

/** Sum of a Prometheus counter's samples (all label sets) from /metrics; undefined when there is no /metrics. */
export async function metricSum (server: CulexServer, name: string): Promise<number | undefined> {
  const { status, body } = await httpGet(server, '/metrics')
  if (status !== 200) return undefined
  let sum = 0
  for (const line of body.split('\n')) {
    if (line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+)$/.exec(line)
    if (m !== null && m[1] === name) sum += Number(m[3])
  }
  return sum
}

