/**
 * Writing to the client: the one entry point (`write`) every byte for the
 * socket goes through, in order, and the outbound path's state.
 *
 * Writes are coalesced: aedes writes each message in its own event-loop
 * callback, and one socket write per loop turn, for all of them, saves a
 * system call per message.
 *
 * `OutboundMode`, the write path (one state instead of a flag per phase):
 *
 *   idle          --write-->                           scheduled
 *   scheduled     --next setImmediate: flush-->        idle
 *   idle, scheduled --resumed session's CONNACK-->     connack-alone  (startResumedDrain)
 *   connack-alone --write (the CONNACK), flushed alone--> gate-holding
 *   gate-holding  --two loop turns-->                  holding
 *   gate-holding  --hold ends, or HOLD_LIMIT bytes-->  gate
 *   gate          --two loop turns: flush-->           idle
 *   holding       --hold ends: flush-->                idle
 *   holding       --HOLD_LIMIT bytes-->                scheduled
 *   idle, scheduled --aedes granted a subscription-->  gathering      (startGathering)
 *   gathering     --two loop turns-->                  gathering-quiet
 *   gathering-quiet --write-->                         gathering
 *   gathering-quiet --two loop turns: flush-->         idle
 *   gathering, gathering-quiet --HOLD_LIMIT bytes: flush--> (the same)
 *   gathering, gathering-quiet --hold ends: flush-->   idle
 *   any           --close: flush-->                    idle
 *
 * `Pressure`, aedes' back-pressure (independent of the write path: a client
 * may fall behind in any phase):
 *
 *   flowing  --after aedes' write, the client is behind-->        waiting (aedes waits)
 *   waiting  --progress, no longer behind-->                      flowing (aedes resumed)
 *   waiting  --slowConsumerTimeout without progress (`shed`)-->   shedding (aedes resumed)
 *   shedding --progress, nothing held and the socket drained-->   flowing
 *
 * A slow but live subscriber loses nothing (aedes waits for it); a stuck one
 * never blocks publishers for longer than `slowConsumerTimeout`, after which
 * the queue limits apply.
 */

/** bytes of a resumed session's queue gathered into one socket write */
export const HOLD_LIMIT = 64 * 1024

export type OutboundMode =
  /** nothing waits to be written */
  | 'idle'
  /** writes wait for the flush at the next setImmediate */
  | 'scheduled'
  /** a resumed session: the next write, its CONNACK, goes out alone and at once */
  | 'connack-alone'
  /** the CONNACK is out: the queue waits two loop turns, and gathers (`HOLD_LIMIT`) */
  | 'gate-holding'
  /** the queue waits two loop turns; its gathering ended */
  | 'gate'
  /** the resumed session's queue gathers into one write until the hold ends or HOLD_LIMIT bytes wait */
  | 'holding'
  /** a SUBSCRIBE's retained messages may follow: writes gather while aedes keeps writing (`startGathering`) */
  | 'gathering'
  /** gathering, and nothing was written since the last look: the next look flushes */
  | 'gathering-quiet'

export type Pressure = 'flowing' | 'waiting' | 'shedding'

/** What the writer uses of a socket (a net.Socket or a WebSocket stream). */
export interface ClientSocket {
  readonly destroyed: boolean
  readonly writable: boolean
  readonly writableNeedDrain: boolean
  write (buf: Buffer): boolean
}

export interface WriterHost {
  readonly socket: ClientSocket
  outMode: OutboundMode
  /** packets for the client, not yet written */
  outQueue: Buffer[] | undefined
  /** bytes in outQueue gathered while holding */
  outQueueBytes: number
  pressure: Pressure
  stallTimer: ReturnType<typeof setTimeout> | undefined
  /** messages held for room in the client's Receive Maximum */
  readonly queuedOutbound: number
  readonly settings: { readonly slowConsumerTimeout: number }
  /** call `progress` at the socket's next 'drain' */
  awaitDrain (): void
  /** aedes may write again (BrokerSide.taken) */
  brokerMayWrite (): void
  /** the client stalled: the queue limits apply to what is held */
  shed (): void
}

/** The one way to the client's socket: every packet for it goes through here, in order. */
export function write (host: WriterHost, out: Buffer[]): void {
  if (out.length === 0) return
  const q = host.outQueue
  if (q === undefined) host.outQueue = out
  else for (const b of out) q.push(b)
  switch (host.outMode) {
    case 'idle':
      host.outMode = 'scheduled'
      setImmediate(flushDue, host)
      return
    case 'scheduled':
    case 'gate':
      return
    case 'connack-alone':
      // A resumed session's CONNACK goes out in a write of its own, and its
      // queue only after two more turns of the event loop, so that a poll
      // phase, where a client reads its socket, comes between them (one
      // setImmediate can run before the next poll). A client reading both in
      // one chunk handles the queue before the code that awaited its connect
      // runs: MQTT.js's `await connectAsync(...)` then `on('message')`
      // acknowledged a whole queue of 50 without a listener (0 of 50; 50 of
      // 50 in 20 runs with this gate; one setImmediate was enough in that
      // test, where the CONNACK is written in a check phase, but not when it
      // is written in the poll phase). test/e2e/persistence/resume-connect-async.test.ts
      flush(host)
      host.outMode = 'gate-holding'
      setImmediate(passTurn, host)
      return
    case 'gate-holding':
    case 'holding':
      for (const b of out) host.outQueueBytes += b.length
      if (host.outQueueBytes < HOLD_LIMIT) return
      if (host.outMode === 'gate-holding') {
        host.outMode = 'gate'
        return
      }
      host.outMode = 'scheduled'
      setImmediate(flushDue, host)
      return
    case 'gathering-quiet':
    case 'gathering':
      host.outMode = 'gathering'
      for (const b of out) host.outQueueBytes += b.length
      if (host.outQueueBytes >= HOLD_LIMIT) flush(host)
  }
}

/**
 * aedes granted a subscription: its retained messages follow (spec 3.3.1.3),
 * written one per two event-loop turns (aedes' retained stream), and a
 * socket write each was three quarters of the broker's CPU for 100k of them.
 * They gather (with the SUBACK) into one write per HOLD_LIMIT bytes instead;
 * the gathering ends two loop turns after the last write, when the client
 * falls behind (`endHold`), or at close. Order is kept: everything for the
 * client goes through the same queue. A resumed session's hold, already
 * gathering, is left as it is.
 */
export function startGathering (host: WriterHost): void {
  switch (host.outMode) {
    case 'idle':
    case 'scheduled':
      host.outMode = 'gathering'
      host.outQueueBytes = 0
      for (const b of host.outQueue ?? []) host.outQueueBytes += b.length
      setImmediate(passGatherTurn, host)
      return
    case 'gathering-quiet':
      host.outMode = 'gathering'
  }
}

function passGatherTurn (host: WriterHost): void {
  setImmediate(lookAtGathering, host)
}

function lookAtGathering (host: WriterHost): void {
  if (host.outMode === 'gathering') {
    host.outMode = 'gathering-quiet'
    setImmediate(passGatherTurn, host)
  } else if (host.outMode === 'gathering-quiet') {
    host.outMode = 'idle'
    flush(host)
  }
}

/**
 * A session was resumed with messages possibly queued: aedes (or the queue
 * sink) sends them right after the CONNACK, one per event-loop turn; they go
 * to the socket together, in one write at the end (`endHold`), or as soon as
 * HOLD_LIMIT bytes wait, rather than one write per message.
 */
export function startResumedDrain (host: WriterHost): void {
  host.outMode = 'connack-alone'
}

/** The resumed session's queue has been sent, or a gathering ends early (the client must get what it has): write it now. */
export function endHold (host: WriterHost): void {
  // 'connack-alone' cannot see it: the CONNACK is written in the step that starts the drain
  if (host.outMode === 'gate-holding') host.outMode = 'gate'
  else if (host.outMode === 'holding' || host.outMode === 'gathering' || host.outMode === 'gathering-quiet') {
    host.outMode = 'idle'
    flush(host)
  }
}

/** The connection closes: what waits goes out now, whatever the phase. */
export function flushAll (host: WriterHost): void {
  host.outMode = 'idle'
  flush(host)
}

function flushDue (host: WriterHost): void {
  if (host.outMode !== 'scheduled') return
  host.outMode = 'idle'
  flush(host)
}

function passTurn (host: WriterHost): void {
  setImmediate(openGate, host)
}

function openGate (host: WriterHost): void {
  if (host.outMode === 'gate-holding') host.outMode = 'holding'
  else if (host.outMode === 'gate') {
    host.outMode = 'idle'
    flush(host)
  }
}

/** The only socket write. */
function flush (host: WriterHost): void {
  host.outQueueBytes = 0
  const q = host.outQueue
  if (q === undefined) return
  host.outQueue = undefined
  const socket = host.socket
  if (socket.destroyed || !socket.writable) return
  socket.write(q.length === 1 ? q[0] as Buffer : Buffer.concat(q))
  if (host.pressure === 'waiting') progress(host)
}

// back-pressure

/** The client is behind: messages wait for its window, or its socket's buffer is full. */
export function congested (host: WriterHost): boolean {
  return host.queuedOutbound > 0 || host.socket.writableNeedDrain
}

/**
 * aedes' write was taken: true when aedes may write more at once; false when
 * it waits for the client to make progress (what it was sent must reach it,
 * so a resumed session's gathered queue goes out now).
 */
export function afterBrokerWrite (host: WriterHost): boolean {
  if (host.pressure === 'shedding' || !congested(host)) return true
  endHold(host)
  host.pressure = 'waiting'
  if (host.socket.writableNeedDrain) host.awaitDrain()
  armStall(host)
  return false
}

function armStall (host: WriterHost): void {
  if (host.stallTimer) host.stallTimer.refresh()
  else {
    host.stallTimer = setTimeout(stalled, host.settings.slowConsumerTimeout, host)
    host.stallTimer.unref()
  }
}

function stalled (host: WriterHost): void {
  host.stallTimer = undefined
  if (host.pressure !== 'waiting') return
  host.pressure = 'shedding'
  host.shed()
  host.brokerMayWrite()
}

/** The client acknowledged something or its socket drained. */
export function progress (host: WriterHost): void {
  if (host.pressure === 'shedding' && host.queuedOutbound === 0 && !host.socket.writableNeedDrain) host.pressure = 'flowing'
  if (host.pressure !== 'waiting') return
  if (congested(host)) {
    if (host.socket.writableNeedDrain) host.awaitDrain()
    armStall(host)
    return
  }
  resumeBroker(host)
}

/** aedes writes again (the client caught up, stalled, or the connection closes). */
export function resumeBroker (host: WriterHost): void {
  if (host.stallTimer) { clearTimeout(host.stallTimer); host.stallTimer = undefined }
  if (host.pressure !== 'waiting') return
  host.pressure = 'flowing'
  host.brokerMayWrite()
}
