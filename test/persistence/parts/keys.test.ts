// The LevelDB key layout.
import t from 'tap'
import { KEY } from '../../../lib/persistence/parts/keys.js'

t.test('client ids are encoded so a ":" cannot split a key; topics and filters stay verbatim', async (t) => {
  t.equal(KEY.sub('a:b', 'x/+/#'), 's:a%3Ab:x/+/#')
  t.equal(KEY.retained('r/:/x'), 'r:r/:/x')
  t.equal(KEY.will('w:1'), 'w:w%3A1')
  t.equal(KEY.session('s 1'), 'x:s%201')
  t.equal(KEY.incoming('c', 42), 'i:c:00042')
  t.equal(KEY.sharedMember('g/1', 'c:1'), 'gm:g%2F1:c%3A1')
  t.equal(KEY.subPrefix('a:b'), 's:a%3Ab:')
})

t.test('queue keys sort in sequence order, for a run of keys of one client and after switching clients', async (t) => {
  const seqs = [1, 15, 16, 255, 4096, 2 ** 40]
  const keys = seqs.map((seq) => KEY.queued('c:1', seq))
  t.strictSame([...keys].sort(), keys)
  t.equal(KEY.queued('other', 1), 'q:other:0000000000000001')
  t.equal(KEY.inflight('c:1', 16), 'qi:c%3A1:0000000000000010', 'the cached encoding follows the client')
  t.equal(KEY.sharedMessage('g', 255), 'gq:g:00000000000000ff')
})

t.test('queue keys of many clients interleaved (a reconnect burst) each name their own client', async (t) => {
  const ids = Array.from({ length: 5000 }, (_, i) => `c:${i}`)
  for (let round = 0; round < 2; round++) {
    const wrong = ids.filter((id, i) => KEY.queued(id, i + 1) !== `q:${encodeURIComponent(id)}:${(i + 1).toString(16).padStart(16, '0')}`)
    t.strictSame(wrong, [], `round ${round + 1}: past the number of encodings kept, too`)
  }
  t.equal(KEY.queued('x', 2 ** 53 - 1), 'q:x:001fffffffffffff', 'the largest sequence number keeps its 16 digits')
})
