import t from 'tap'
import { isWellFormedString } from '../../lib/protocol/utf8.js'

const hex = (h: string): Buffer => Buffer.from(h, 'hex')

t.test('well-formed strings pass, including a literal U+FFFD [MQTT-1.5.4-1]', async (t) => {
  t.ok(isWellFormedString(Buffer.from('sensors/kitchen/€')))
  t.ok(isWellFormedString(hex('efbfbd')), 'U+FFFD itself is a valid character')
  t.ok(isWellFormedString(hex('f09f9880')), 'a four-byte sequence')
  t.ok(isWellFormedString(Buffer.alloc(0)), 'the empty string')
})

t.test('ill-formed UTF-8 is refused [MQTT-1.5.4-1]', async (t) => {
  t.notOk(isWellFormedString(hex('c080')), 'overlong U+0000')
  t.notOk(isWellFormedString(hex('eda080')), 'a surrogate code point')
  t.notOk(isWellFormedString(hex('ff')), 'a byte that never occurs in UTF-8')
  t.notOk(isWellFormedString(hex('e282')), 'a truncated sequence')
  t.notOk(isWellFormedString(hex('f4908080')), 'above U+10FFFF')
})

t.test('U+0000 is refused [MQTT-1.5.4-2]', async (t) => {
  t.notOk(isWellFormedString(hex('610062')))
})

t.test('only the given range is checked', async (t) => {
  const buf = Buffer.concat([hex('ff'), Buffer.from('ok'), hex('ff')])
  t.ok(isWellFormedString(buf, 1, 3))
  t.notOk(isWellFormedString(buf, 0, 3))
})
