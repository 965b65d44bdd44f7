// GroupCommit alone, over a batch target that records what each batch holds.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { GroupCommit, type BatchTarget } from '../../lib/persistence/group-commit.js'

function recorder (): { target: BatchTarget, batches: string[][] } {
  const batches: string[][] = []
  return {
    batches,
    target: {
      batch () {
        const ops: string[] = []
        return {
          put (key: string) { ops.push(`put ${key}`) },
          del (key: string) { ops.push(`del ${key}`) },
          async write () { batches.push(ops) }
        }
      }
    }
  }
}

t.test('delLater: no batch of its own until its delay, then one with every delete', async (t) => {
  const { target, batches } = recorder()
  const writer = new GroupCommit(target, false, () => {}, 50)
  void writer.delLater('q:a')
  void writer.delLater('q:b')
  await sleep(10)
  t.strictSame(batches, [], 'nothing written yet')
  await sleep(100)
  t.strictSame(batches, [['del q:a', 'del q:b']])
})

t.test('delLater: joins the batch a put starts, after a pending put of the same key', async (t) => {
  const { target, batches } = recorder()
  const writer = new GroupCommit(target, false, () => {}, 10_000)
  const put = writer.put('q:a', new Uint8Array([1]))
  void writer.delLater('q:a')
  await put
  t.strictSame(batches, [['put q:a', 'del q:a']], 'the delete comes last: the key is gone')
  void writer.delLater('q:b')
  await writer.flush()
  t.strictSame(batches[1], ['del q:b'], 'flush writes what waits')
})

t.test('delLater without a delay is an ordinary delete', async (t) => {
  const { target, batches } = recorder()
  const writer = new GroupCommit(target, false, () => {})
  await writer.delLater('q:a')
  t.strictSame(batches, [['del q:a']])
})
