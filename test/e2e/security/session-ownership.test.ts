/**
 * A persistent session belongs to the identity that made it
 * (lib/protocol/session-claim.ts): another user name, or an anonymous client,
 * using its Client Identifier is refused with CONNACK 0x87 (3.1.1: return
 * code 5), and the owner's session and live connection are untouched;
 * `sessionOwnership: 'any'` keeps mosquitto's behaviour.
 */
import t, { type Test } from 'tap'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import type { CulexServer } from '../../../lib/server.js'
import type { ConfigInput } from '../../../lib/config/schema.js'
import { connackCode, passwd, startLoggedServer, tempDir, uniqueId, writeFile } from '../../helpers/security.js'
import { gone, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectAck, inbox } from '../../helpers/level-broker.js'
import { hasMosquittoClients, mosquittoSub } from '../../helpers/mosquitto.js'
import { waitFor } from '../../helpers/wait.js'

const ACL = `user alice
topic readwrite alice/#
user bob
topic readwrite bob/#
`

async function credentials (t: Test): Promise<{ passwordFile: string, aclFile: string, dir: string }> {
  const dir = tempDir(t)
  const passwordFile = writeFile(dir, 'passwd', '')
  await passwd(['--password', 'secret', passwordFile, 'alice'])
  await passwd(['--password', 'hunter2', passwordFile, 'bob'])
  return { passwordFile, aclFile: writeFile(dir, 'acl', ACL), dir }
}

const alice = { username: 'alice', password: Buffer.from('secret') }
const bob = { username: 'bob', password: Buffer.from('hunter2') }

for (const version of [5, 4] as const) {
  const name = version === 5 ? 'MQTT 5' : 'MQTT 3.1.1'
  const refused = version === 5 ? ReasonCode.NotAuthorized : 5
  const persistent = version === 5 ? { clean: false, properties: { sessionExpiryInterval: 3600 } } : { clean: false }

  t.test(`${name}: another user, or an anonymous client, cannot take, resume or discard alice's session: CONNACK ${version === 5 ? '0x87' : '5'}`, async (t) => {
    const { passwordFile, aclFile } = await credentials(t)
    const { server, logs } = await startLoggedServer(t, { passwordFile, aclFile, allowAnonymous: true })
    const url = tcpUrl(server)
    const port = tcpPort(server)
    const id = uniqueId('alices-device')
    const topic = `alice/inbox/${id}`
    const own = await connectAck(t, url, { protocolVersion: version, clientId: id, ...alice, ...persistent })
    await own.client.subscribeAsync(topic, { qos: 1 })
    const live = inbox(own.client)

    for (const [who, creds] of [['bob', { username: 'bob', password: Buffer.from('hunter2') }], ['an anonymous client', {}]] as const) {
      for (const clean of [false, true]) {
        const code = await connackCode(t, port, version, { clientId: id, clean, ...creds })
        t.equal(code, refused, `${who} with alice's client id and Clean Start ${clean ? 1 : 0}: refused`)
      }
    }
    t.ok(logs.some(l => l.msg === 'connection refused: the session of this client id belongs to another user' && l.owner === 'alice' && l.username === 'bob'), 'logged, naming both users')
    t.equal(own.client.connected, true, 'alice is still connected')
    const publisher = await connectAck(t, url, { protocolVersion: version, clientId: uniqueId('alice-pub'), ...alice })
    await publisher.client.publishAsync(topic, 'live', { qos: 1 })
    t.same((await live.wait(1)).map(p => p.payload.toString()), ['live'], 'and served')

    const left = gone(server, id)
    own.client.end(true)
    await left
    for (const m of ['q1', 'q2', 'q3']) await publisher.client.publishAsync(topic, m, { qos: 1 })
    for (const clean of [false, true]) {
      t.equal(await connackCode(t, port, version, { clientId: id, clean, ...bob }), refused, `bob while alice is offline, Clean Start ${clean ? 1 : 0}: refused`)
    }
    const back = await connectAck(t, url, { protocolVersion: version, clientId: id, ...alice, ...persistent })
    t.equal(back.sessionPresent, true, 'alice resumes her session')
    t.same((await inbox(back.client).wait(3)).map(p => p.payload.toString()), ['q1', 'q2', 'q3'], 'with her whole queue')
    await back.client.endAsync()
    await publisher.client.endAsync()
  })

  t.test(`${name}: sessionOwnership 'any' lets another user take the session over, as mosquitto does`, async (t) => {
    const { passwordFile, aclFile } = await credentials(t)
    const { server } = await startLoggedServer(t, { passwordFile, aclFile, sessionOwnership: 'any' })
    const url = tcpUrl(server)
    const id = uniqueId('taken')
    const own = await connectAck(t, url, { protocolVersion: version, clientId: id, ...alice, ...persistent })
    await own.client.subscribeAsync(`alice/${id}`, { qos: 1 })
    const closed = new Promise<void>((resolve) => own.client.once('close', () => resolve()))
    const other = await connectAck(t, url, { protocolVersion: version, clientId: id, ...bob, ...persistent })
    t.equal(other.sessionPresent, true, 'bob resumes the session')
    await closed
    t.pass('and alice was disconnected')
    await other.client.endAsync()
  })
}

t.test('the owner is stored with the session: it holds across a restart on the LevelDB store', async (t) => {
  const { passwordFile, aclFile, dir } = await credentials(t)
  const config: ConfigInput = { passwordFile, aclFile, persistence: 'level', dataDir: `${dir}/data` }
  let { server } = await startLoggedServer(t, config)
  const id = uniqueId('durable-owner')
  const own = await connectAck(t, tcpUrl(server), { clientId: id, ...alice, clean: false, properties: { sessionExpiryInterval: 3600 } })
  await own.client.subscribeAsync(`alice/${id}`, { qos: 1 })
  const left = gone(server, id)
  await own.client.endAsync()
  await left
  await server.close()
  server = (await startLoggedServer(t, config)).server
  t.equal(await connackCode(t, tcpPort(server), 5, { clientId: id, clean: false, ...bob }), ReasonCode.NotAuthorized, 'bob is refused after the restart')
  const back = await connectAck(t, tcpUrl(server), { clientId: id, ...alice, clean: false, properties: { sessionExpiryInterval: 3600 } })
  t.equal(back.sessionPresent, true, 'alice resumes her session')
  await back.client.endAsync()
})

t.test('mosquitto_sub: bob with alice\'s client id is refused; alice\'s mosquitto_sub keeps receiving', async (t) => {
  if (!await hasMosquittoClients()) { t.fail('mosquitto-clients is not installed'); return }
  const { passwordFile, aclFile } = await credentials(t)
  const { server } = await startLoggedServer(t, { passwordFile, aclFile })
  const port = String(tcpPort(server))
  const id = uniqueId('mosq-owned')
  const topic = `alice/${id}`
  const own = mosquittoSub(t, ['-h', '127.0.0.1', '-p', port, '-V', '5', '-c', '-x', '3600', '-u', 'alice', '-P', 'secret', '-i', id, '-t', topic, '-q', '1'])
  await t.resolves(waitFor(() => [...server.broker.connections].some(c => c.isAccepted && c.clientId === id)), 'alice is connected')
  for (const v of ['5', '311']) {
    const intruder = mosquittoSub(t, ['-h', '127.0.0.1', '-p', port, '-V', v, '-c', '-u', 'bob', '-P', 'hunter2', '-i', id, '-t', `bob/${id}`, '-q', '1'])
    t.not(await intruder.exited(), 0, `mosquitto_sub -V ${v} as bob gives up: refused`)
  }
  const publisher = await connectAck(t, tcpUrl(server), { clientId: uniqueId('pub'), ...alice })
  await publisher.client.publishAsync(topic, 'still here', { qos: 1 })
  t.same(await own.lines$(1), ['still here'], 'alice\'s mosquitto_sub was not kicked')
  await publisher.client.endAsync()
})
