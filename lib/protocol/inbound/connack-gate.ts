/**
 * The packets a client sends after its CONNECT and before the CONNACK that
 * answers it. A client need not wait for CONNACK (spec 3.1.4), but the
 * server must not answer anything before it, nor act on anything once it
 * refused the CONNECT:
 * - [MQTT-3.2.0-1] the CONNACK is the first packet the server sends (MQTT 5:
 *   before anything but AUTH);
 * - [MQTT-3.1.4-6] (3.1.1: [MQTT-3.1.4-5]) after a refused CONNECT nothing
 *   the client sent after it is processed;
 * - [MQTT-3.1.2-30] with an Authentication Method (spec 4.12), only AUTH and
 *   DISCONNECT may come before CONNACK; anything else is a Protocol Error.
 *
 * So the gateway checks nothing after a CONNECT until the CONNACK went out:
 * the frames wait, in order, and are checked once it accepted the client, or
 * dropped once it refused it. The state is one small number per connection.
 */
import { PacketType } from '../frame.js'

export const ConnackGate = {
  /** before CONNECT (the CONNECT itself is checked), or after an accepting CONNACK */
  Open: 0,
  /** CONNECT read, CONNACK not sent yet */
  Waiting: 1,
  /** the same, for a CONNECT with an Authentication Method: the AUTH exchange goes on */
  WaitingAuth: 2,
  /** the CONNACK refused the client */
  Refused: 3
} as const
export type ConnackGateState = typeof ConnackGate[keyof typeof ConnackGate]

/**
 * What the gateway does with the next frame from the client:
 * 'check' it now, 'hold' it (and everything after it) until the CONNACK,
 * 'drop' it unread, or close for a 'protocol-error'.
 */
export type GateDecision = 'check' | 'hold' | 'drop' | 'protocol-error'

export function gateDecision (state: ConnackGateState, packetType: number): GateDecision {
  switch (state) {
    case ConnackGate.Open: return 'check'
    case ConnackGate.Waiting: return 'hold'
    case ConnackGate.WaitingAuth:
      return packetType === PacketType.AUTH || packetType === PacketType.DISCONNECT ? 'check' : 'protocol-error'
    case ConnackGate.Refused: return 'drop'
  }
}

/** The state once the CONNECT was read. */
export function afterConnect (enhancedAuthentication: boolean): ConnackGateState {
  return enhancedAuthentication ? ConnackGate.WaitingAuth : ConnackGate.Waiting
}

/** The state once the CONNACK was sent. */
export function afterConnack (accepted: boolean): ConnackGateState {
  return accepted ? ConnackGate.Open : ConnackGate.Refused
}

/**
 * Frames held before CONNACK beyond which the socket is paused until the
 * CONNACK (a login can take a while, slowed down per address after failures):
 * what a client sends before it is accepted stays in its own socket buffers,
 * not in the broker's memory.
 */
export const MAX_HELD_BEFORE_CONNACK = 64
