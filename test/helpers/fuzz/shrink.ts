/**
 * Greedy shrinking of one connection's script. Shrinking a batch with
 * fast-check restarts the broker at every failing candidate, which took
 * minutes on a loaded machine; the fuzzer instead finds the connection that
 * fails alone and removes what it can from it: packets, properties, framing
 * errors, split points, the flipped bit, the delay; property values become
 * 0 or empty.
 */
import type { PacketSpec, Part, Prop } from './encode.js'
import type { Script } from './arbitraries.js'

/** The packet with one property removed, one candidate per property. */
function fewerProps (p: PacketSpec): PacketSpec[] {
  const out: PacketSpec[] = []
  p.parts.forEach((part, i) => {
    if (Buffer.isBuffer(part)) return
    const withProps = (props: Prop[]): void => {
      const parts: Part[] = [...p.parts]
      parts[i] = { props }
      out.push({ ...p, parts })
    }
    part.props.forEach((_prop, k) => withProps(part.props.filter((_x, j) => j !== k)))
    // then simpler values: 0 for a number, nothing for a string
    part.props.forEach((prop, k) => {
      const simpler = typeof prop.value === 'number' ? (prop.value === 0 ? undefined : 0) : (prop.value.length === 0 ? undefined : Buffer.alloc(0))
      if (simpler !== undefined) withProps(part.props.map((x, j) => j === k ? { ...x, value: simpler } : x))
    })
  })
  if (p.framing !== undefined) out.push({ ...p, framing: undefined })
  return out
}

/** Scripts one step smaller than `s`, the biggest steps first. */
export function smaller (s: Script): Script[] {
  const out: Script[] = []
  if (s.packets.length > s.closeAfter) out.push({ ...s, packets: s.packets.slice(0, s.closeAfter) })
  s.packets.forEach((_p, i) => {
    out.push({ ...s, packets: s.packets.filter((_x, j) => j !== i), closeAfter: i < s.closeAfter ? s.closeAfter - 1 : s.closeAfter })
  })
  if (s.flip !== undefined) out.push({ ...s, flip: undefined })
  if (s.splits.length > 0) out.push({ ...s, splits: [] })
  if (s.delay > 0) out.push({ ...s, delay: 0 })
  if (s.close !== 'destroy') out.push({ ...s, close: 'destroy' })
  if (s.connect !== undefined) for (const c of fewerProps(s.connect)) out.push({ ...s, connect: c })
  s.packets.forEach((p, i) => {
    for (const q of fewerProps(p)) out.push({ ...s, packets: s.packets.map((x, j) => j === i ? q : x) })
  })
  return out
}

/**
 * Shrinks `s` while `fails` says the smaller script still fails the same way;
 * stops at `until` (ms timestamp) with the smallest found so far.
 */
export async function shrink (s: Script, fails: (s: Script) => Promise<boolean>, until: number): Promise<{ script: Script, steps: number }> {
  let current = s
  let steps = 0
  let progress = true
  while (progress && Date.now() < until) {
    progress = false
    for (const candidate of smaller(current)) {
      if (Date.now() >= until) break
      if (await fails(candidate)) { current = candidate; steps++; progress = true; break }
    }
  }
  return { script: current, steps }
}
