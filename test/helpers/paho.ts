/** Runs Paho (Python) clients against a test broker: test/fixtures/paho_worker.py. */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { Test } from 'tap'
import { lineProcess, type SubProcess } from './mosquitto.js'

const run = promisify(execFile)

export const PAHO_WORKER = fileURLToPath(new URL('../fixtures/paho_worker.py', import.meta.url))

/** The first Python 3 that can import paho.mqtt (the Debian package lives in the system interpreter). */
export async function findPython (): Promise<string | undefined> {
  for (const python of ['python3', '/usr/bin/python3']) {
    try {
      await run(python, ['-c', 'import paho.mqtt.client'], { timeout: 10000 })
      return python
    } catch { /* next */ }
  }
  return undefined
}

export interface PahoWorkerOptions {
  port: number
  version: 4 | 5
  clientId: string
  keepalive: number
  /** how long it stays connected before it disconnects and prints "done" */
  seconds: number
  filter: string
  /** 'resume': Clean Start 0, no SUBSCRIBE; a number: Clean Start 1 with that Session Expiry Interval (MQTT 5) */
  session?: 'resume' | number
}

/** Starts a Paho worker (see the fixture for the lines it prints); killed when `t` ends. */
export function pahoWorker (t: Test, python: string, o: PahoWorkerOptions): SubProcess {
  const args = [PAHO_WORKER, '127.0.0.1', String(o.port), String(o.version), o.clientId, String(o.keepalive), String(o.seconds), o.filter]
  if (o.session !== undefined) args.push(String(o.session))
  return lineProcess(t, python, args)
}
