/**
 * A work queue's delivery count and backoff deadline are in the group's log
 * (LevelDB): culex killed with SIGKILL between deliveries continues the count
 * where it was (README "Work queues"; lib/shared/retries.ts,
 * lib/persistence/parts/group-log.ts).
 */
import t, { type Test } from 'tap'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { IPublishPacket } from 'mqtt'
import { connectClient } from '../../helpers/mqtt.js'
import { CULEX_BIN, startCulex, type CulexProcess } from '../../helpers/cli.js'
import { nextPublishes, rawMember, rawSubscribe, shareId, text } from '../../helpers/share.js'
import type { RawClient } from '../../helpers/raw.js'
import { sleep } from '../../helpers/wait.js'

const KEY = '$share/jobs/jobs/#'
const GROUPS = JSON.stringify([{ pattern: 'jobs', maxDeliveries: 10, retryBackoff: { initial: 400, factor: 1, max: 400 } }])

async function startLevel (t: Test, dataDir: string): Promise<CulexProcess> {
  const c = await startCulex(['--host', '127.0.0.1', '--port', 'auto', '--ws-port', '0', '--persistence', 'level', '--data-dir', dataDir, '--log-level', 'info', '--shared-groups', GROUPS])
  t.teardown(() => { if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL') })
  return c
}

async function sigkill (c: CulexProcess): Promise<void> {
  c.child.kill('SIGKILL')
  await c.exit
}

/** A persistent MQTT 5 member; it joins the group the first time only (its session keeps the membership). */
async function member (t: Test, c: CulexProcess, clientId: string, join: boolean): Promise<RawClient> {
  const m = await rawMember(t, c.port, { clientId, clean: false, sessionExpiryInterval: 300 })
  if (join) t.same(await rawSubscribe(m, [{ topic: KEY, qos: 1 }]), [1], 'joined')
  return m
}

const count = (p: IPublishPacket | undefined): unknown => (p?.properties?.userProperties as Record<string, string> | undefined)?.['culex-delivery-count']

t.test('SIGKILL between deliveries: the delivery count and the backoff continue after the restart', async (t) => {
  if (!existsSync(CULEX_BIN)) {
    t.fail(`${CULEX_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
    return
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'culex-wq-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const id = shareId('wq-member')

  const first = await startLevel(t, dataDir)
  let m = await member(t, first, id, true)
  const pub = await connectClient(t, first.url, { clientId: shareId('pub'), protocolVersion: 5 })
  await pub.publishAsync('jobs/1', 'job', { qos: 1 })
  pub.end(true)
  let [p] = await nextPublishes(m, 1)
  t.equal(count(p), undefined, 'first delivery: no count')
  m.send({ cmd: 'puback', messageId: p?.messageId as number, reasonCode: 0, properties: { userProperties: { 'culex-settle': 'abandon' } } })
  ;[p] = await nextPublishes(m, 1, 3000)
  t.equal(count(p), '2', 'second delivery: 2')
  m.send({ cmd: 'puback', messageId: p?.messageId as number, reasonCode: 0, properties: { userProperties: { 'culex-settle': 'abandon' } } })
  // killed while the job waits for its backoff
  const abandonedAt = Date.now()
  // the group commit writes within a few ms
  await sleep(50)
  m.destroy()
  await sigkill(first)
  t.equal(first.child.signalCode, 'SIGKILL')

  const second = await startLevel(t, dataDir)
  m = await member(t, second, id, false)
  ;[p] = await nextPublishes(m, 1, 5000)
  t.equal(p && text(p), 'job', 'the job survived')
  t.equal(count(p), '3', 'third delivery after the restart: 3')
  t.ok(Date.now() - abandonedAt >= 395, 'not before its backoff deadline, kept across the restart')
  // killed while delivered and not acknowledged
  await sleep(50)
  m.destroy()
  await sigkill(second)

  const third = await startLevel(t, dataDir)
  m = await member(t, third, id, false)
  ;[p] = await nextPublishes(m, 1, 5000)
  t.equal(count(p), '4', 'fourth delivery after a second SIGKILL: 4')
  m.send({ cmd: 'puback', messageId: p?.messageId as number, reasonCode: 0 })
})
