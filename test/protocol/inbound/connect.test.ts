/**
 * lib/protocol/inbound/connect.ts `decodeCommonConnect`: the CONNECT packets
 * it decodes itself come out exactly as mqtt-packet decodes them, and it
 * leaves everything else (Will, User Properties, authentication, MQIsdp,
 * bridge bit, truncated or trailing bytes, damaged bytes) to mqtt-packet.
 */
import t from 'tap'
import fc from 'fast-check'
import mqtt, { type IConnectPacket, type Packet } from 'mqtt-packet'
import { decodeCommonConnect, inspectConnect } from '../../../lib/protocol/inbound/connect.js'
import { frameOf, fixedHeaderLength } from '../../../lib/protocol/frame.js'
import { ReasonCode } from '../../../lib/protocol/reason-codes.js'
import { connectBytes, prop, properties } from '../../helpers/packet-bytes.js'

/** What mqtt-packet makes of `buf` at `version`. */
function reference (buf: Buffer, version: number): Packet | Error {
  const parser = mqtt.parser({ protocolVersion: version as 3 | 4 | 5 })
  let packet: Packet | undefined
  let error: Error | undefined
  parser.on('packet', (p: Packet) => { packet ??= p })
  parser.on('error', (e: Error) => { error ??= e })
  parser.parse(buf)
  return error ?? packet ?? new Error('incomplete packet')
}

const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v)) as unknown

/** The fast path's answer for a whole CONNECT, or undefined when it leaves it to mqtt-packet. */
function fast (buf: Buffer): IConnectPacket | undefined {
  const headerLength = fixedHeaderLength(buf)
  if (buf.length < headerLength + 2) return undefined
  return decodeCommonConnect(buf, headerLength, headerLength + 2 + buf.readUInt16BE(headerLength))
}

const u16 = fc.integer({ min: 0, max: 0xffff })
const u32 = fc.integer({ min: 0, max: 0xffffffff })
// valid CONNECTs only: strings without U+0000 [MQTT-1.5.4-2], Will Topics
// without wildcards [MQTT-3.3.2-2]; the invalid ones are refused before
// decoding (inbound/connect-rules.ts, test/e2e/protocol/connect-validation.test.ts)
const noNull = (s: string): boolean => !s.includes('\u0000')
const text = fc.string({ unit: 'grapheme', maxLength: 12 }).filter(noNull)

const commonProps = fc.record({
  sessionExpiryInterval: u32,
  receiveMaximum: fc.integer({ min: 1, max: 0xffff }),
  maximumPacketSize: fc.integer({ min: 1, max: 0xffffffff }),
  topicAliasMaximum: u16,
  requestResponseInformation: fc.boolean(),
  requestProblemInformation: fc.boolean()
}, { requiredKeys: [] })

const otherProps = fc.record({
  userProperties: fc.dictionary(fc.string({ minLength: 1, maxLength: 5 }).filter(noNull), fc.string({ maxLength: 5 }).filter(noNull), { maxKeys: 2 }),
  authenticationMethod: fc.string({ minLength: 1, maxLength: 8 }).filter(noNull)
}, { requiredKeys: [] })

const will = fc.record({
  topic: fc.string({ minLength: 1, maxLength: 10 }).filter(s => noNull(s) && !/[+#]/.test(s)),
  payload: fc.uint8Array({ maxLength: 10 }).map(a => Buffer.from(a)),
  qos: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
  retain: fc.boolean()
})

const connect = fc.record({
  protocolVersion: fc.constantFrom(3, 4, 5) as fc.Arbitrary<3 | 4 | 5>,
  clientId: text,
  clean: fc.boolean(),
  keepalive: u16,
  username: fc.option(text, { nil: undefined }),
  password: fc.option(fc.uint8Array({ maxLength: 10 }).map(a => Buffer.from(a)), { nil: undefined }),
  will: fc.option(will, { nil: undefined }),
  common: fc.option(commonProps, { nil: undefined }),
  other: fc.option(otherProps, { nil: undefined })
}).map((c): { packet: IConnectPacket, buf: Buffer } | null => {
  const properties = c.protocolVersion === 5 && (c.common || c.other) ? { ...c.common, ...c.other } : undefined
  const packet: IConnectPacket = {
    cmd: 'connect',
    protocolId: c.protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: c.protocolVersion,
    clientId: c.clientId,
    clean: c.clean,
    keepalive: c.keepalive,
    ...(c.username !== undefined ? { username: c.username } : {}),
    ...(c.password !== undefined ? { password: c.password } : {}),
    ...(c.will !== undefined ? { will: c.will } : {}),
    ...(properties !== undefined && Object.keys(properties).length > 0 ? { properties } : {})
  }
  try {
    const buf = mqtt.generate(packet, { protocolVersion: c.protocolVersion })
    // mqtt-packet gives nothing for what it will not encode (empty User Properties)
    return buf.length > 0 ? { packet, buf } : null
  } catch {
    // combinations mqtt-packet will not encode (a password without a user name in 3.1.1)
    return null
  }
}).filter((x): x is { packet: IConnectPacket, buf: Buffer } => x !== null)

t.test('every CONNECT it decodes comes out as mqtt-packet decodes it; common ones are decoded by it', async (t) => {
  let decoded = 0
  fc.assert(fc.property(connect, ({ packet, buf }) => {
    const mine = fast(buf)
    const common = packet.protocolVersion !== 3 && packet.will === undefined &&
      Object.keys(packet.properties?.userProperties ?? {}).length === 0 && packet.properties?.authenticationMethod === undefined
    if (common !== (mine !== undefined)) return false
    if (mine !== undefined) decoded++
    const expected = reference(buf, packet.protocolVersion ?? 4)
    const inspected = inspectConnect(frameOf(buf))
    if (inspected.kind !== 'ok') return false
    return JSON.stringify(plain(inspected.packet)) === JSON.stringify(plain(expected)) &&
      (mine === undefined || JSON.stringify(plain(mine)) === JSON.stringify(plain(expected)))
  }), { numRuns: 3000 })
  t.ok(decoded > 100, `the fast path took ${decoded} of the packets`)
})

t.test('damaged, truncated or extended CONNECTs: whatever it accepts, mqtt-packet decodes the same way', async (t) => {
  const damaged = fc.tuple(connect, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'cut', 'extend'))
  fc.assert(fc.property(damaged, ([{ buf }, at, byte, how]) => {
    let bad = Buffer.from(buf)
    const headerLength = fixedHeaderLength(buf)
    if (how === 'flip') bad[headerLength + (at % (buf.length - headerLength))] = byte
    else if (how === 'cut') {
      // the Remaining Length still says the whole packet: the frame is cut short
      bad = bad.subarray(0, headerLength + (at % (buf.length - headerLength)))
    } else {
      // one byte more inside the packet: the Remaining Length grows by one
      const body = Buffer.concat([buf.subarray(headerLength), Buffer.from([byte])])
      const header = mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'x', clean: true, keepalive: 0 }).subarray(0, 1)
      if (body.length >= 128) return true
      bad = Buffer.concat([header, Buffer.from([body.length]), body])
    }
    const mine = fast(bad)
    if (mine === undefined) return true
    const expected = reference(bad, mine.protocolVersion ?? 4)
    return !(expected instanceof Error) && JSON.stringify(plain(mine)) === JSON.stringify(plain(expected))
  }), { numRuns: 5000 })
  t.pass('no disagreement')
})

t.test('examples: what it leaves to mqtt-packet', async (t) => {
  const base: IConnectPacket = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'a', clean: true, keepalive: 30 }
  const v5 = (p: Partial<IConnectPacket>): Buffer => mqtt.generate({ ...base, ...p }, { protocolVersion: 5 })
  t.ok(fast(v5({})), 'a bare MQTT 5 CONNECT')
  t.ok(fast(v5({ username: 'u', password: Buffer.from('p'), properties: { receiveMaximum: 10, sessionExpiryInterval: 60 } })), 'with credentials and common properties')
  t.equal(fast(v5({ will: { topic: 'w', payload: Buffer.alloc(0), qos: 0, retain: false } })), undefined, 'a Will')
  t.equal(fast(v5({ properties: { userProperties: { a: 'b' } } })), undefined, 'User Properties')
  const bridged = v5({})
  bridged[fixedHeaderLength(bridged) + 6] = 0x85
  t.equal(fast(bridged), undefined, 'the bridge bit')
  const reserved = v5({})
  reserved[fixedHeaderLength(reserved) + 7] = (reserved[fixedHeaderLength(reserved) + 7] as number) | 1
  t.equal(fast(reserved), undefined, 'the reserved flag')
  t.equal(fast(mqtt.generate({ ...base, protocolVersion: 3, protocolId: 'MQIsdp' }, { protocolVersion: 3 })), undefined, 'MQTT 3.1')
})

t.test('spec 2.2.2.2: any CONNECT property but User Property, given twice, is a Protocol Error before any decoder sees it', async (t) => {
  const one = fc.oneof(
    fc.integer({ min: 0, max: 0xffffffff }).map(v => prop.four(0x11, v)),
    fc.integer({ min: 1, max: 0xffff }).map(v => prop.two(0x21, v)),
    fc.integer({ min: 1, max: 0xffffffff }).map(v => prop.four(0x27, v)),
    fc.integer({ min: 0, max: 0xffff }).map(v => prop.two(0x22, v)),
    fc.integer({ min: 0, max: 1 }).map(v => prop.byte(0x17, v)),
    fc.integer({ min: 0, max: 1 }).map(v => prop.byte(0x19, v)),
    fc.string({ minLength: 1, maxLength: 8 }).filter(s => !s.includes('\u0000')).map(v => prop.string(0x15, v))
  )
  let refused = 0
  fc.assert(fc.property(one, one, fc.nat({ max: 2 }), (a, b, at) => {
    // `a` twice, with `b` before, between or after (b may be a third copy)
    const list = [a, a]
    list.splice(at, 0, b)
    const inspected = inspectConnect(frameOf(connectBytes({ properties: properties(...list) })))
    if (inspected.kind !== 'invalid' || inspected.reasonCode !== ReasonCode.ProtocolError) return false
    refused++
    return true
  }), { numRuns: 500 })
  t.equal(refused, 500, 'every one refused with 0x82')
})
