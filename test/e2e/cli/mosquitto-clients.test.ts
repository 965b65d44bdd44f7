/**
 * Interoperability with mosquitto's command-line clients, -V 5 and -V 311:
 * a round trip at each QoS, and a retained message a later mosquitto_sub gets.
 */
import t from 'tap'
import { startTestServer, tcpPort } from '../../helpers/server.js'
import { hasMosquittoClients, mosquittoPub, mosquittoSub, subscribedTo } from '../../helpers/mosquitto.js'

t.test('mosquitto_pub / mosquitto_sub', async (t) => {
  if (!await hasMosquittoClients()) {
    t.fail('mosquitto-clients is not installed (.ci/run installs it)')
    return
  }
  const server = await startTestServer(t)
  const port = String(tcpPort(server))
  for (const V of ['5', '311']) {
    for (const qos of ['0', '1', '2']) {
      await t.test(`-V ${V} round trip at QoS ${qos}`, async (t) => {
        const topic = `interop/${V}/${qos}`
        const subscribed = subscribedTo(server.broker, topic)
        const sub = mosquittoSub(t, ['-h', '127.0.0.1', '-p', port, '-V', V, '-q', qos, '-t', topic, '-C', '3', '-v'])
        await subscribed
        for (let i = 0; i < 3; i++) await mosquittoPub(['-h', '127.0.0.1', '-p', port, '-V', V, '-q', qos, '-t', topic, '-m', `m${i}`])
        const lines = await sub.lines$(3)
        t.same(lines, [`${topic} m0`, `${topic} m1`, `${topic} m2`])
        t.equal(await sub.exited(), 0, 'mosquitto_sub exits 0 after -C 3')
      })
    }
    await t.test(`-V ${V} a retained message reaches a later mosquitto_sub`, async (t) => {
      const topic = `interop/retained/${V}`
      await mosquittoPub(['-h', '127.0.0.1', '-p', port, '-V', V, '-q', '1', '-r', '-t', topic, '-m', 'last-known'])
      const sub = mosquittoSub(t, ['-h', '127.0.0.1', '-p', port, '-V', V, '-t', topic, '-C', '1', '-v'])
      const lines = await sub.lines$(1)
      t.same(lines, [`${topic} last-known`])
      t.equal(await sub.exited(), 0)
    })
  }
  await t.test('-V 5 user properties (-D) pass through', async (t) => {
    const topic = 'interop/props'
    const subscribed = subscribedTo(server.broker, topic)
    const sub = mosquittoSub(t, ['-h', '127.0.0.1', '-p', port, '-V', '5', '-t', topic, '-C', '1', '-F', '%t %p %P'])
    await subscribed
    await mosquittoPub(['-h', '127.0.0.1', '-p', port, '-V', '5', '-t', topic, '-m', 'hi', '-D', 'publish', 'user-property', 'k', 'v'])
    const [line] = await sub.lines$(1)
    t.match(line, /^interop\/props hi k:v$/)
  })
})
