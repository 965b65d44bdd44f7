/** What the gateway does with a frame from the client, as a flow decides it. */
import type { Packet } from 'mqtt-packet'

export type Verdict =
  /** hand the frame to aedes as it is */
  | { kind: 'pass' }
  /** hand these packets to aedes instead */
  | { kind: 'replace', packets: Packet[] }
  | { kind: 'drop' }
  | { kind: 'close', reasonCode: number, reason: string }
  /** wait for an asynchronous decision; later frames wait behind it */
  | { kind: 'defer', decision: Promise<Verdict> }

export const PASS: Verdict = { kind: 'pass' }
export const DROP: Verdict = { kind: 'drop' }
