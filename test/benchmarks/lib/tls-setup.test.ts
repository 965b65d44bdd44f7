/**
 * The connects-tls pin: mosquitto's listener is configured with it, and a
 * load-generator connection negotiates exactly it against a Node TLS server
 * left at its defaults (as culex's is), with the run's own certificate.
 */
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import tls from 'node:tls'
import t from 'tap'
import { PeakSampler } from '../../../benchmarks/lib/procfs.js'
import { clientSettings, makeBrokerTls, mosquittoTlsListener, TLS_PIN } from '../../../benchmarks/lib/tls-setup.js'
import { MqttConn } from '../../../benchmarks/loadgen/conn.js'

const files = { keyFile: '/tmp/k.pem', certFile: '/tmp/c.pem', certPem: '-----BEGIN CERTIFICATE-----' }

t.test('mosquitto gets a TLS listener with the same files, version and suite', async (t) => {
  t.same(mosquittoTlsListener(8883, '127.0.0.1', files), [
    'listener 8883 127.0.0.1',
    'certfile /tmp/c.pem',
    'keyfile /tmp/k.pem',
    'tls_version tlsv1.2',
    'ciphers ECDHE-RSA-AES128-GCM-SHA256'
  ])
})

t.test('the client offers one version, one suite, one group and trusts only the run certificate', async (t) => {
  const settings = clientSettings(files)
  t.equal(settings.minVersion, TLS_PIN.version)
  t.equal(settings.maxVersion, TLS_PIN.version)
  t.equal(settings.ciphers, TLS_PIN.cipher)
  t.equal(settings.ecdhCurve, TLS_PIN.group)
  t.equal(settings.caPem, files.certPem)
})

t.test('a load-generator TLS connection to a default Node TLS server negotiates the pin', async (t) => {
  const made = await makeBrokerTls()
  t.match(made.certPem, /BEGIN CERTIFICATE/)
  t.equal(readFileSync(made.certFile, 'utf8'), made.certPem)
  // Answers any CONNECT with an MQTT 5 CONNACK (success, no properties).
  const server = tls.createServer({ key: readFileSync(made.keyFile), cert: made.certPem }, (socket) => {
    socket.once('data', () => socket.write(Buffer.from([0x20, 0x03, 0x00, 0x00, 0x00])))
    socket.on('error', () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const port = (server.address() as AddressInfo).port
  const { conn } = await MqttConn.open({
    host: '127.0.0.1',
    port,
    transport: 'tcp',
    wsPort: null,
    wsPath: '/mqtt',
    protocolVersion: 5,
    clientId: 'pin-check',
    clean: true,
    keepaliveS: 0,
    sessionExpiryS: null,
    connectTimeoutMs: 5000,
    tls: { port, settings: clientSettings(made) }
  })
  t.same(conn.tls, { protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256', group: 'X25519' })
  conn.destroy()
})

t.test('PeakSampler keeps the highest reading and survives a failed one', async (t) => {
  const readings = [10, 30, 20]
  const sampler = new PeakSampler(() => {
    const next = readings.shift()
    if (next === undefined) throw new Error('process gone')
    return next
  }, 60_000)
  sampler.start()
  sampler.sample()
  t.equal(sampler.peak, 30)
  t.equal(sampler.stop(), 30, 'the last reading fails, the peak stays')
})
