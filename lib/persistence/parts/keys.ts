// Keys of the level store (clientIds are encodeURIComponent-ed so that a ':'
// in an id cannot split a key; topics and filters are stored verbatim after
// the last fixed separator):
//   meta:format                  {"format":1}                 format version
//   r:<topic>                    packet                       retained message
//   s:<cid>:<filter>             {qos,rh,rap,nl,sid}          subscription
//   q:<cid>:<seq, 16 hex>        packet                       queued message body
//   qi:<cid>:<seq, 16 hex>       {m} | {p}                    its packet id / PUBREL state
//   i:<cid>:<messageId, 5 dec>   packet                       inbound QoS 2 awaiting PUBREL
//   w:<cid>                      packet                       will message
//   x:<cid>                      SessionMeta                  session deadline, will delay, owner; also a 3.1.1 persistent session (no deadline)
//   gm:<group>:<cid>             StoredMember                 shared subscription group member
//   gq:<group>:<seq, 16 hex>     packet                       shared subscription group log entry
// <seq> is one store-wide counter, so a session's queue keys sort in the
// order the messages were enqueued.

export const KEY = {
  format: 'meta:format',
  retained: (topic: string) => 'r:' + topic,
  sub: (cid: string, filter: string) => 's:' + encodeURIComponent(cid) + ':' + filter,
  subPrefix: (cid: string) => 's:' + encodeURIComponent(cid) + ':',
  queued: (cid: string, seq: number) => 'q:' + encodeCid(cid) + ':' + seqHex(seq),
  inflight: (cid: string, seq: number) => 'qi:' + encodeCid(cid) + ':' + seqHex(seq),
  incoming: (cid: string, messageId: number) => 'i:' + encodeURIComponent(cid) + ':' + String(messageId).padStart(5, '0'),
  will: (cid: string) => 'w:' + encodeURIComponent(cid),
  session: (cid: string) => 'x:' + encodeURIComponent(cid),
  /** shared subscription group member (lib/shared) */
  sharedMember: (group: string, cid: string) => 'gm:' + encodeURIComponent(group) + ':' + encodeURIComponent(cid),
  /** shared subscription group log entry, in seq order */
  sharedMessage: (group: string, seq: number) => 'gq:' + encodeURIComponent(group) + ':' + seqHex(seq)
} as const

// A reconnect burst acknowledges the queues of many sessions at once, their
// keys interleaved: the encoded ids of recent sessions are kept, not only the
// last one's (a Map lookup costs a fraction of encodeURIComponent).
const ENCODED_IDS = 4096
let encodedIds = new Map<string, string>()
function encodeCid (cid: string): string {
  let encoded = encodedIds.get(cid)
  if (encoded === undefined) {
    if (encodedIds.size >= ENCODED_IDS) encodedIds = new Map()
    encoded = encodeURIComponent(cid)
    encodedIds.set(cid, encoded)
  }
  return encoded
}

const ZEROS = '0000000000000000'

// a slice of a constant and one concatenation: cheaper than padStart, once per queued message and per delete
function seqHex (seq: number): string {
  const hex = seq.toString(16)
  return ZEROS.slice(hex.length) + hex
}
