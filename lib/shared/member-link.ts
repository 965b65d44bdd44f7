/**
 * What the shared-subscription dispatcher and a member's connection (the
 * protocol gateway) exchange: the link the gateway offers, the delivery it
 * is handed, and the marker that tells aedes' hooks a delivery is shared.
 */

/** Broker id marking a shared delivery: `SHARED_BROKER_ID + group key`. */
export const SHARED_BROKER_ID = '$culex-share:'

/** What the dispatcher needs of a member's live connection (the protocol gateway). */
export interface MemberLink {
  readonly clientId: string
  /** the aedes Client of this connection (identity for acknowledgements) */
  readonly client: object
  /** free places for QoS 1/2 messages in its window */
  room (): number
  /** hands a message to aedes for this client */
  publish (packet: SharedDelivery, done: (err?: Error) => void): void
  /**
   * Sends a QoS 1 delivery without aedes when the client's session keeps
   * nothing: the packet id it went out with; 'refused' (no read right) or
   * 'expired' when it is not sent; undefined to use `publish`.
   */
  sendShared? (packet: SharedDelivery): DirectSend
}

export type DirectSend = number | 'refused' | 'expired' | undefined

export interface SharedDelivery {
  cmd: 'publish'
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
  retain: boolean
  dup: boolean
  properties?: Record<string, unknown>
  messageExpiry?: number
  brokerId: string
  brokerCounter: number
}
