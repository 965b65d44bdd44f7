import t from 'tap'
import { previewPayload, PREVIEW_CHARS, PREVIEW_HEX_BYTES } from '../../lib/admin/preview.js'

t.test('empty, text, JSON and hex', async (t) => {
  t.same(previewPayload(undefined), { format: 'empty', preview: '', bytes: 0, truncated: false })
  t.same(previewPayload(Buffer.from('21.5 °C')), { format: 'text', preview: '21.5 °C', bytes: 8, truncated: false })
  t.same(previewPayload(Buffer.from('{"a":[1,2]}')), { format: 'json', preview: '{\n  "a": [\n    1,\n    2\n  ]\n}', bytes: 11, truncated: false })
  t.equal(previewPayload(Buffer.from('42')).format, 'text', 'a JSON scalar stays text')
  t.same(previewPayload(Buffer.from([0, 1, 0xfe])), { format: 'hex', preview: '00 01 fe', bytes: 3, truncated: false })
  t.equal(previewPayload(Buffer.from('a\u0000b')).format, 'hex', 'control characters are not text')
  t.equal(previewPayload(Buffer.from([0xc3])).format, 'hex', 'invalid UTF-8')
  t.equal(previewPayload('<img src=x onerror=alert(1)>').preview, '<img src=x onerror=alert(1)>', 'HTML stays as the text it is')
})

t.test('bounded', async (t) => {
  const long = previewPayload(Buffer.from('x'.repeat(PREVIEW_CHARS + 10)))
  t.equal(long.preview.length, PREVIEW_CHARS)
  t.equal(long.truncated, true)
  t.equal(long.bytes, PREVIEW_CHARS + 10)
  const bin = previewPayload(Buffer.alloc(PREVIEW_HEX_BYTES + 1, 0xff))
  t.equal(bin.preview.split(' ').length, PREVIEW_HEX_BYTES)
  t.equal(bin.truncated, true)
  const huge = previewPayload(Buffer.from('é'.repeat(40000)))
  t.equal(huge.format, 'text', 'a cut through a character is not taken for binary')
  t.equal(huge.truncated, true)
})
