/**
 * A client's retained PUBLISH and its SUBSCRIBE take effect in the order the
 * client sent them.
 *
 * aedes handles one client's packets concurrently. A retained PUBLISH is
 * routed to subscribers only once the store has taken it, so a SUBSCRIBE sent
 * right after it was made first: the client got the message live (the
 * subscription existed when it was routed) and again as the retained copy
 * (the store held it when the subscription read the retained messages). The
 * other order raced the same way. A QoS 0 message arrived twice, against
 * its at-most-once delivery (spec 4.3.1), and every QoS once too many.
 *
 * So the gateway holds:
 * - a SUBSCRIBE until the retained PUBLISHes before it are routed (aedes'
 *   `published`, or their refusal); it then finds the message retained and
 *   gets it once, as the retained copy, as from a broker that handles
 *   packets one after the other (mosquitto);
 * - a retained PUBLISH until the SUBSCRIBEs before it are answered: aedes
 *   reads the retained messages for a subscription right after writing its
 *   SUBACK, so the message is not among them and reaches the subscription
 *   once, live.
 *
 * Made on the first retained PUBLISH of a connection; most never have one.
 */
export class RetainedOrder {
  /** QoS 0 and 1 retained PUBLISHes handed to aedes and not yet routed */
  private unrouted = 0
  /** packet ids of QoS 2 retained PUBLISHes whose PUBREC has not gone out (aedes writes it once it routed the message) */
  private unroutedQoS2: Set<number> | undefined = undefined
  private routedWaiters: Array<() => void> | undefined = undefined
  private subscribedWaiters: Array<() => void> | undefined = undefined

  /** A retained PUBLISH goes to aedes (QoS 2: with its packet id). */
  forwarded (qos2PacketId: number | undefined): void {
    if (qos2PacketId === undefined) this.unrouted++
    else (this.unroutedQoS2 ??= new Set()).add(qos2PacketId)
  }

  /** aedes routed (or refused) a QoS 0/1 retained PUBLISH of the client. */
  routed (): void {
    if (this.unrouted > 0) this.unrouted--
    this.wakeIfRouted()
  }

  /** The PUBREC of QoS 2 PUBLISH `packetId` went out. */
  pubrecSent (packetId: number): void {
    if (this.unroutedQoS2?.delete(packetId) === true) this.wakeIfRouted()
  }

  /** Resolves once every retained PUBLISH handed to aedes so far is routed; undefined when they are. */
  whenRouted (): Promise<void> | undefined {
    if (this.isRouted()) return undefined
    return new Promise((resolve) => { (this.routedWaiters ??= []).push(resolve) })
  }

  /** Resolves at `subscriptionsAnswered`. */
  whenSubscribed (): Promise<void> {
    return new Promise((resolve) => { (this.subscribedWaiters ??= []).push(resolve) })
  }

  /** aedes answered every SUBSCRIBE handed to it. */
  subscriptionsAnswered (): void {
    const waiters = this.subscribedWaiters
    if (waiters === undefined) return
    this.subscribedWaiters = undefined
    for (const wake of waiters) wake()
  }

  private isRouted (): boolean {
    return this.unrouted === 0 && (this.unroutedQoS2 === undefined || this.unroutedQoS2.size === 0)
  }

  private wakeIfRouted (): void {
    const waiters = this.routedWaiters
    if (waiters === undefined || !this.isRouted()) return
    this.routedWaiters = undefined
    for (const wake of waiters) wake()
  }
}
