/**
 * CPU accounting of the benchmark harness: utime + stime from a
 * /proc/<pid>/stat line (a comm with spaces and parentheses included) and
 * per-process deltas, which a cluster's figure sums.
 */
import t from 'tap'
import { cpuDeltas, cpuSeconds, netstatCounter, statCpuTicks } from '../../../benchmarks/lib/procfs.js'

// Fields 3.. after the comm: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime ...
const stat = (comm: string, utime: number, stime: number): string =>
  `4242 (${comm}) S 1 4242 4242 0 -1 4194560 1000 0 0 0 ${utime} ${stime} 0 0 20 0 11 0 123 456789 1234 18446744073709551615`

t.test('statCpuTicks adds utime and stime', async (t) => {
  t.equal(statCpuTicks(stat('node', 150, 25)), 175)
  t.equal(statCpuTicks(stat('redis-server', 0, 0)), 0)
})

t.test('statCpuTicks is not fooled by a comm with spaces and parentheses', async (t) => {
  t.equal(statCpuTicks(stat('we(i) rd) 1 2 3', 7, 3)), 10)
})

t.test('statCpuTicks refuses a line it cannot read', async (t) => {
  t.throws(() => statCpuTicks('4242 (node) S 1 2'), /cannot parse/)
  t.throws(() => statCpuTicks(''), /cannot parse/)
})

t.test('cpuDeltas: what each process used between two readings, in order', async (t) => {
  const deltas = cpuDeltas([1, 2.5, 0], [1.5, 4, 0.25])
  t.same(deltas, [0.5, 1.5, 0.25])
  t.equal(deltas.reduce((a, b) => a + b, 0), 2.25, 'the cluster figure is the sum')
  t.throws(() => cpuDeltas([1], [1, 2]), /1 readings before, 2 after/)
})

t.test('cpuSeconds reads this process and names a pid that is gone', async (t) => {
  t.ok(cpuSeconds(process.pid) >= 0)
  t.throws(() => cpuSeconds(2 ** 22 + 12345), /cpu time of/)
})

t.test('netstatCounter reads one TcpExt counter by name', async (t) => {
  const text = 'TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 3 17 19\nIpExt: InNoRoutes\nIpExt: 0\n'
  t.equal(netstatCounter(text, 'ListenOverflows'), 17)
  t.equal(netstatCounter(text, 'ListenDrops'), 19)
  t.equal(netstatCounter(text, 'NoSuchCounter'), null)
  t.equal(netstatCounter('', 'ListenOverflows'), null)
})
