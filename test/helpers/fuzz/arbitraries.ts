/**
 * fast-check generators for the gateway fuzzer: MQTT 5, 3.1.1 and 3.1
 * packets of every type described field by field (test/helpers/fuzz/encode.ts writes
 * them), mostly well-formed, often wrong in one place: a property repeated or
 * out of place, a field omitted, a zero or extreme value, an ill-formed UTF-8
 * string, wrong flags, a Remaining Length that lies, a packet cut short.
 * Then one connection's script: a CONNECT, packets (before or after the
 * CONNACK), writes split at random bytes, and a close at a random point.
 */
import fc from 'fast-check'
import { PROPERTY_TYPES, encodePacket, u16, type Framing, type PacketSpec, type Part, type Prop } from './encode.js'
import { str } from '../packet-bytes.js'

const b = (s: string): Buffer => Buffer.from(s, 'utf8')

/** Strings the spec forbids or that sit on an edge (spec 1.5.4, 4.7); kept out of the valid pool, and none contains U+FFFD. */
export const BAD_STRINGS: readonly Buffer[] = [
  Buffer.alloc(0),
  b('\u0000'), b('a\u0000b'),
  Buffer.from([0xc0, 0x80]), // overlong U+0000
  Buffer.from([0xed, 0xa0, 0x80]), // a surrogate
  Buffer.from([0xff]), Buffer.from([0x61, 0xe2, 0x82]), // not UTF-8, a sequence cut short
  Buffer.from([0xf4, 0x90, 0x80, 0x80]), // above U+10FFFF
  b('\u0001'), b('\u007f'), b('\ufeff'), b('\uffff'),
  Buffer.alloc(300, 0x61)
]

const TOPICS = ['fz/a', 'fz/b/c', 'fz/é/😀', '/', 'fz/', '$SYS/x', '$share/g/fz', 'fz/+', 'fz/#', '#', '+'].map(b)
const FILTERS = ['fz/#', 'fz/+', '#', '+/+', 'fz/a', '$share/g/fz/#', '$share/g2/#', '$share//fz', '$share/g', '$share/+/fz', 'fz/#/x', 'fz+', '$SYS/#'].map(b)

const someBytes = (pool: readonly Buffer[]): fc.Arbitrary<Buffer> => fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...pool, b('x')) },
  { weight: 2, arbitrary: fc.string({ maxLength: 12 }).map(b) },
  { weight: 2, arbitrary: fc.constantFrom(...BAD_STRINGS) }
)
const topic = someBytes(TOPICS)
const filter = someBytes(FILTERS)
const text = someBytes(['fz', 'text/plain', 'SCRAM-SHA-256', 'k', 'v'].map(b))
const binary = fc.oneof(fc.constant(Buffer.alloc(0)), fc.uint8Array({ maxLength: 24 }).map(a => Buffer.from(a)))

/** Zero, one, the largest values of each width and just past them, or anything. */
const extreme = (max: number): fc.Arbitrary<number> => fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(0, 1, 2, max, max - 1, 0xff, 0x7fff, 0x8000) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max }) }
)
const u8 = extreme(0xff)
const u16v = extreme(0xffff)
const packetId = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 20 }) }, { weight: 2, arbitrary: u16v })

function propValue (id: number): fc.Arbitrary<Prop> {
  switch (PROPERTY_TYPES[id]) {
    case 'byte': return u8.map(value => ({ id, value }))
    case 'two': return u16v.map(value => ({ id, value }))
    case 'four': return extreme(0xffffffff).map(value => ({ id, value }))
    case 'varint': return fc.oneof(extreme(268_435_455), fc.constant(268_435_456)).map(value => ({ id, value }))
    case 'string': return text.map(value => ({ id, value }))
    case 'binary': return binary.map(value => ({ id, value }))
    case 'pair': return fc.tuple(text, text).map(([value, value2]) => ({ id, value, value2 }))
    default: return u8.map(value => ({ id, value })) // an identifier the spec does not define
  }
}

/**
 * A Properties field for a packet that allows `allowed`: mostly those, now
 * and then any property or an undefined identifier, and often one of them
 * repeated (spec 2.2.2.2: a Protocol Error unless the property may repeat).
 */
function props (allowed: readonly number[]): fc.Arbitrary<{ props: Prop[] }> {
  const id = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...allowed) },
    { weight: 1, arbitrary: fc.constantFrom(...Object.keys(PROPERTY_TYPES).map(Number)) },
    { weight: 1, arbitrary: fc.constantFrom(0x00, 0x04, 0x2b, 0x7f, 0x80) }
  )
  return fc.tuple(
    fc.array(id.chain(propValue), { maxLength: 4 }),
    fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 3 })), { freq: 3, nil: undefined })
  ).map(([list, repeat]) => {
    if (repeat === undefined || list.length === 0) return { props: list }
    const [which, times] = repeat
    const p = list[which % list.length] as Prop
    return { props: [...list, ...Array.from({ length: times }, () => p)] }
  })
}

const CONNECT_PROPS = [0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26, 0x15, 0x16]
const WILL_PROPS = [0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26]
const PUBLISH_PROPS = [0x01, 0x02, 0x23, 0x08, 0x09, 0x26, 0x0b, 0x03]
const ACK_PROPS = [0x1f, 0x26]
const DISCONNECT_PROPS = [0x11, 0x1f, 0x26, 0x1c]
const AUTH_PROPS = [0x15, 0x16, 0x1f, 0x26]

/** Framing errors, rare enough that most packets reach the protocol layer. */
const framing: fc.Arbitrary<Framing | undefined> = fc.option(fc.oneof(
  fc.record({ keep: fc.nat({ max: 6 }) }),
  fc.record({ length: fc.oneof(fc.constantFrom(0, 1, 2, 127, 128, 16_383, 268_435_455), fc.nat({ max: 300 })) }),
  fc.record({ length: fc.constantFrom(Buffer.from([0x80, 0x00]), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]), Buffer.from([0x80, 0x80, 0x80, 0x80])) }),
  fc.record({ cut: fc.integer({ min: 1, max: 8 }) })
), { freq: 6, nil: undefined })

/** The right fixed-header flags, or now and then any. */
const flags = (right: number): fc.Arbitrary<number> => fc.oneof({ weight: 9, arbitrary: fc.constant(right) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 15 }) })

interface ConnectOpts {
  version: 3 | 4 | 5
  valid: boolean
  /** the will's topics (default: the common pool) */
  willTopic?: fc.Arbitrary<Buffer>
  /** username and password to send instead of generated ones (undefined fields: none sent) */
  creds?: { user?: Buffer, pass?: Buffer }
  /** no properties and a plain client id: a CONNECT that only its credentials can get refused */
  plain?: boolean
}

/**
 * CONNECT: protocol name and level, flags that may disagree with the fields
 * present, keep-alive, properties, client id, will (with its properties),
 * username and password. `valid` keeps the framing right and the flags true.
 */
export function connect ({ version, valid, willTopic = topic, creds, plain = false }: ConnectOpts): fc.Arbitrary<PacketSpec> {
  const noProps = fc.constant({ props: [] })
  const bad = <T>(good: fc.Arbitrary<T>, any: fc.Arbitrary<T>): fc.Arbitrary<T> => valid ? good : fc.oneof({ weight: 3, arbitrary: good }, { weight: 1, arbitrary: any })
  return fc.record({
    level: bad(fc.constant(version), fc.constantFrom(0, 2, 6, 255)),
    name: bad(fc.constant(b(version === 3 ? 'MQIsdp' : 'MQTT')), fc.constantFrom(b('MQTT'), b('MQIsdp'), b('mqtt'), Buffer.alloc(0))),
    clean: fc.boolean(),
    will: fc.option(fc.record({ qos: bad(fc.integer({ min: 0, max: 2 }), fc.constant(3)), retain: fc.boolean(), props: plain ? noProps : props(WILL_PROPS), topic: willTopic, payload: binary }), { nil: undefined }),
    user: creds !== undefined ? fc.constant(creds.user) : fc.option(text, { nil: undefined }),
    pass: creds !== undefined ? fc.constant(creds.pass) : fc.option(fc.constantFrom(b('fuzz-pw'), b('wrong'), Buffer.alloc(0)), { nil: undefined }),
    reserved: bad(fc.constant(false), fc.boolean()),
    flagLies: bad(fc.constant(0), fc.integer({ min: 0, max: 0xff })),
    keepalive: fc.oneof(fc.constantFrom(0, 1, 30, 0xffff), u16v),
    props: plain ? noProps : props(CONNECT_PROPS),
    clientId: plain ? fc.constantFrom(b('fz-1'), b('fz-2'), b('fz-3')) : fc.oneof({ weight: 4, arbitrary: fc.constantFrom(b('fz-1'), b('fz-2'), b('fz-3'), Buffer.alloc(0)) }, { weight: 1, arbitrary: someBytes([]) }),
    framing: valid ? fc.constant(undefined) : framing
  }).map(c => {
    const f = (c.clean ? 0x02 : 0) | (c.will ? 0x04 | (c.will.qos << 3) | (c.will.retain ? 0x20 : 0) : 0) |
      (c.pass ? 0x40 : 0) | (c.user ? 0x80 : 0) | (c.reserved ? 0x01 : 0)
    const parts: Part[] = [str(c.name), Buffer.from([c.level, f ^ c.flagLies]), u16(c.keepalive), c.props, str(c.clientId)]
    if (c.will) parts.push(c.will.props, str(c.will.topic), str(c.will.payload))
    if (c.user) parts.push(str(c.user))
    if (c.pass) parts.push(str(c.pass))
    return { type: 1, flags: 0, parts, framing: c.framing, name: `CONNECT v${c.level}` }
  })
}

const publishTo = (topic: fc.Arbitrary<Buffer>): fc.Arbitrary<PacketSpec> => fc.record({
  qos: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 2 }) }, { weight: 1, arbitrary: fc.constant(3) }),
  dup: fc.boolean(),
  retain: fc.boolean(),
  topic,
  id: packetId,
  props: props(PUBLISH_PROPS),
  payload: binary,
  framing
}).map(p => ({
  type: 3,
  flags: (p.dup ? 8 : 0) | (p.qos << 1) | (p.retain ? 1 : 0),
  parts: [str(p.topic), ...(p.qos > 0 ? [u16(p.id)] : []), p.props, p.payload],
  framing: p.framing,
  name: `PUBLISH qos ${p.qos}`
}))

/** PUBACK, PUBREC, PUBREL, PUBCOMP: packet id, then (MQTT 5) a reason code and properties, each of which may be left out. */
const ack: fc.Arbitrary<PacketSpec> = fc.record({
  type: fc.constantFrom(4, 5, 6, 7),
  id: packetId,
  reason: fc.constantFrom(0x00, 0x10, 0x80, 0x92, 0x97, 0xff),
  props: props(ACK_PROPS),
  tail: fc.integer({ min: 0, max: 2 }),
  framing
}).chain(a => flags(a.type === 6 ? 2 : 0).map(fl => ({
  type: a.type,
  flags: fl,
  parts: [u16(a.id), Buffer.from([a.reason]), a.props].slice(0, 1 + a.tail),
  framing: a.framing,
  name: ['PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP'][a.type - 4] as string
})))

const subscribe: fc.Arbitrary<PacketSpec> = fc.record({
  id: packetId,
  props: props([0x0b, 0x26]),
  subs: fc.array(fc.tuple(filter, fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: 0x2f }) }, { weight: 1, arbitrary: u8 })), { maxLength: 3 }),
  flags: flags(2),
  framing
}).map(s => ({
  type: 8,
  flags: s.flags,
  parts: [u16(s.id), s.props, ...s.subs.map(([f, o]) => Buffer.concat([str(f), Buffer.from([o])]))],
  framing: s.framing,
  name: 'SUBSCRIBE'
}))

const unsubscribe: fc.Arbitrary<PacketSpec> = fc.record({
  id: packetId,
  props: props([0x26]),
  filters: fc.array(filter, { maxLength: 3 }),
  flags: flags(2),
  framing
}).map(u => ({ type: 10, flags: u.flags, parts: [u16(u.id), u.props, ...u.filters.map(str)], framing: u.framing, name: 'UNSUBSCRIBE' }))

/** DISCONNECT and AUTH: a reason code and properties, either of which may be left out. */
const withReason = (type: 14 | 15, allowed: readonly number[], reasons: readonly number[]): fc.Arbitrary<PacketSpec> => fc.record({
  reason: fc.constantFrom(...reasons),
  props: props(allowed),
  tail: fc.integer({ min: 0, max: 2 }),
  flags: flags(0),
  framing
}).map(d => ({ type, flags: d.flags, parts: [Buffer.from([d.reason]), d.props].slice(0, d.tail), framing: d.framing, name: type === 14 ? 'DISCONNECT' : 'AUTH' }))

/** Packets only a server sends, the reserved types, and packets with no body. */
const other: fc.Arbitrary<PacketSpec> = fc.record({
  type: fc.constantFrom(0, 2, 9, 11, 12, 12, 12, 13),
  body: fc.oneof(fc.constant(Buffer.alloc(0)), binary),
  framing
}).map(o => ({ type: o.type, flags: 0, parts: [o.body], framing: o.framing, name: `type ${o.type}` }))

/** Any packet a client might send after its CONNECT, a second CONNECT included; its PUBLISHes go to `topics`. */
export const packet = (version: 3 | 4 | 5, topics: fc.Arbitrary<Buffer> = topic): fc.Arbitrary<PacketSpec> => fc.oneof(
  { weight: 5, arbitrary: publishTo(topics) },
  { weight: 3, arbitrary: ack },
  { weight: 2, arbitrary: subscribe },
  { weight: 1, arbitrary: unsubscribe },
  { weight: 1, arbitrary: withReason(14, DISCONNECT_PROPS, [0x00, 0x04, 0x80, 0x8e]) },
  { weight: 1, arbitrary: withReason(15, AUTH_PROPS, [0x00, 0x18, 0x19, 0x01]) },
  { weight: 1, arbitrary: other },
  { weight: 1, arbitrary: connect({ version, valid: false }) }
)

/** How a connection ends. */
export type Close = 'end' | 'destroy' | 'wait'

/**
 * How a connection of the credentials campaign logs in: the right password,
 * a wrong one (or an unknown user), no credentials, or SCRAM-SHA-256 over
 * AUTH (MQTT 5) with the right or a wrong password.
 */
export type Login = 'right' | 'wrong' | 'none' | 'scram' | 'scram-wrong'

/** Logins the broker must refuse. */
export const refusedLogin = (login: Login | undefined): boolean => login === 'wrong' || login === 'none' || login === 'scram-wrong'

/** One connection of the fuzzer. */
export interface Script {
  version: 3 | 4 | 5
  /** credentials campaign only; the SCRAM logins replace `connect` by a SCRAM CONNECT and answer the server's AUTH */
  login?: Login
  /** undefined: no CONNECT at all */
  connect: PacketSpec | undefined
  /** the CONNECT and what follows in one write (before the CONNACK can arrive), or wait for the CONNACK first */
  sameWrite: boolean
  packets: PacketSpec[]
  /** the connection is closed after this many of `packets` were written (a bad one may be last) */
  closeAfter: number
  /** end (FIN), destroy (reset), or wait for the server to answer or close */
  close: Close
  /** ms to wait before closing (0: in the same tick as the last write, before any answer) */
  delay: number
  /** byte offsets at which the writes are split */
  splits: number[]
  /** a bit flipped in the bytes after the CONNECT (offset, bit), as a blind mutation fuzzer would */
  flip: [number, number] | undefined
  [fc.toStringMethod]: () => string
}

/** The bytes of a script: the CONNECT's, then each packet's. */
export function scriptBytes (s: Pick<Script, 'version' | 'connect' | 'packets' | 'closeAfter' | 'flip'>): { connect: Buffer, rest: Buffer } {
  const rest = Buffer.concat(s.packets.slice(0, s.closeAfter).map(p => encodePacket(p, s.version)))
  if (s.flip !== undefined && rest.length > 0) {
    const i = s.flip[0] % rest.length
    rest[i] = (rest[i] as number) ^ (1 << s.flip[1])
  }
  return { connect: s.connect === undefined ? Buffer.alloc(0) : encodePacket(s.connect, s.version), rest }
}

const scriptOf = (version: 3 | 4 | 5): fc.Arbitrary<Omit<Script, typeof fc.toStringMethod>> => fc.record({
  version: fc.constant(version),
  connect: fc.oneof(
    { weight: 6, arbitrary: connect({ version, valid: true }) },
    { weight: 3, arbitrary: connect({ version, valid: false }) },
    { weight: 1, arbitrary: fc.constant(undefined) }
  ),
  sameWrite: fc.boolean(),
  packets: fc.array(packet(version), { maxLength: 5 }),
  closeAfter: fc.nat({ max: 5 }),
  close: fc.constantFrom<Close>('end', 'destroy', 'wait'),
  delay: fc.constantFrom(0, 0, 1, 5, 30),
  splits: fc.array(fc.nat({ max: 400 }), { maxLength: 3 }),
  flip: fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { freq: 8, nil: undefined })
})
const scripts = { 3: scriptOf(3), 4: scriptOf(4), 5: scriptOf(5) }

export const script: fc.Arbitrary<Script> = fc.constantFrom<3 | 4 | 5>(5, 5, 5, 4, 4, 3).chain(version => scripts[version]).map(s => ({
  ...s,
  closeAfter: Math.min(s.closeAfter, s.packets.length),
  [fc.toStringMethod] (this: Script) { return describeScript(this) }
}))

/** The user and password of the credentials campaign (test/e2e/security/fuzz.test.ts writes them to its password file). */
export const FUZZ_USER = 'fz'
export const FUZZ_PASSWORD = 'fuzz-pw'
/** Topics only refused connections publish to: a message on one of them that reaches a subscriber was processed behind a refused CONNECT. */
export const REFUSED_PREFIX = 'refused/'
const REFUSED_TOPICS = fc.constantFrom(...['refused/a', 'refused/b/c', 'refused/'].map(b))

const credentialsOf = (login: Login): fc.Arbitrary<{ user?: Buffer, pass?: Buffer }> => {
  switch (login) {
    case 'right': case 'scram': return fc.constant({ user: b(FUZZ_USER), pass: b(FUZZ_PASSWORD) })
    case 'wrong': case 'scram-wrong': return fc.constantFrom({ user: b(FUZZ_USER), pass: b('wrong') }, { user: b(FUZZ_USER), pass: Buffer.alloc(0) }, { user: b('nobody'), pass: b(FUZZ_PASSWORD) }, { user: b(FUZZ_USER) })
    case 'none': return fc.constant({})
  }
}

/**
 * A script of the credentials campaign: mostly the right password, sometimes
 * a wrong one or none, SCRAM now and then on MQTT 5; a connection that must
 * be refused publishes (and wills) only to REFUSED_PREFIX topics.
 */
export const credentialScript: fc.Arbitrary<Script> = fc.tuple(
  fc.constantFrom<3 | 4 | 5>(5, 5, 5, 4, 4, 3),
  fc.constantFrom<Login>('right', 'right', 'right', 'right', 'right', 'right', 'wrong', 'wrong', 'none', 'scram', 'scram-wrong')
).chain(([version, chosen]) => {
  const login: Login = version !== 5 && chosen.startsWith('scram') ? (chosen === 'scram' ? 'right' : 'wrong') : chosen
  const topics = refusedLogin(login) ? REFUSED_TOPICS : topic
  return fc.record({
    version: fc.constant(version),
    login: fc.constant(login),
    connect: credentialsOf(login).chain(creds => fc.oneof(
      { weight: 5, arbitrary: connect({ version, valid: true, willTopic: topics, creds, plain: true }) },
      { weight: 3, arbitrary: connect({ version, valid: true, willTopic: topics, creds }) },
      { weight: 1, arbitrary: connect({ version, valid: false, willTopic: topics, creds }) }
    )),
    sameWrite: login.startsWith('scram') ? fc.constant(false) : fc.boolean(),
    packets: fc.array(packet(version, topics), { maxLength: 5 }),
    closeAfter: fc.nat({ max: 5 }),
    close: fc.constantFrom<Close>('end', 'destroy', 'wait'),
    delay: fc.constantFrom(0, 0, 1, 5, 30),
    splits: fc.array(fc.nat({ max: 400 }), { maxLength: 3 }),
    flip: fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { freq: 8, nil: undefined })
  })
}).map(s => ({
  ...s,
  closeAfter: Math.min(s.closeAfter, s.packets.length),
  [fc.toStringMethod] (this: Script) { return describeScript(this) }
}))

/** The script in a line: what it does and its bytes in hex, so that a failure can be replayed by hand. */
export function describeScript (s: Script): string {
  const { connect: c, rest } = scriptBytes(s)
  const names = s.packets.slice(0, s.closeAfter).map(p => p.name).join(', ')
  return `v${s.version}${s.login !== undefined ? ` login ${s.login}` : ''} ${s.connect === undefined ? 'no CONNECT' : `${s.connect.name} [${c.toString('hex')}]`}` +
    `${s.sameWrite ? ' in the same write as' : ', CONNACK awaited, then'} [${names}] [${rest.toString('hex')}]` +
    `${s.flip !== undefined ? ` with bit ${s.flip[1]} of byte ${s.flip[0]} flipped` : ''}${s.splits.length > 0 ? ` split at ${s.splits.join(',')}` : ''}, then ${s.close} after ${s.delay} ms`
}

