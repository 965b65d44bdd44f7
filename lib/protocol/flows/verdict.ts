/**
 * What the gateway does with one packet from the client: each flow's
 * handler answers with a verdict, which connection.ts `processInbound`
 * applies in the client's order.
 */
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
