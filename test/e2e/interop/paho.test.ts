/**
 * Interoperability with Eclipse Paho for Python (Debian's python3-paho-mqtt,
 * 1.6 or 2.x) speaking MQTT 5: subscribe with a Subscription Identifier,
 * publish QoS 1 with User Properties and a Message Expiry Interval, and
 * report what came back as JSON.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startTestServer, tcpPort, tcpUrl } from '../../helpers/server.js'
import { connectClient, collect } from '../../helpers/mqtt.js'
import { findPython } from '../../helpers/paho.js'

const run = promisify(execFile)

const SCRIPT = String.raw`
import json, sys, threading
import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions

host, port, topic, client_id = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
report = {"paho": paho.mqtt.__version__, "errors": []}
done = threading.Event()

def plain(props):
    if props is None:
        return None
    out = {}
    for name, value in props.json().items():
        out[name] = value.decode() if isinstance(value, (bytes, bytearray)) else value
    return out

def on_connect(client, userdata, flags, rc, properties=None, *rest):
    report["connack"] = {"reasonCode": getattr(rc, "value", rc), "properties": plain(properties)}
    sub_props = Properties(PacketTypes.SUBSCRIBE)
    sub_props.SubscriptionIdentifier = 42
    client.subscribe(topic, options=SubscribeOptions(qos=1), properties=sub_props)

def on_subscribe(client, userdata, mid, granted, properties=None, *rest):
    report["granted"] = [getattr(g, "value", g) for g in granted]
    pub_props = Properties(PacketTypes.PUBLISH)
    pub_props.UserProperty = [("origin", "paho"), ("n", "1")]
    pub_props.MessageExpiryInterval = 60
    pub_props.ContentType = "text/plain"
    client.publish(topic, b"hello from paho", qos=1, properties=pub_props)

def on_message(client, userdata, msg):
    report["message"] = {
        "topic": msg.topic,
        "payload": msg.payload.decode(),
        "qos": msg.qos,
        "properties": plain(getattr(msg, "properties", None)),
    }
    client.disconnect()
    done.set()

if hasattr(mqtt, "CallbackAPIVersion"):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
else:
    client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
try:
    client.connect(host, port, keepalive=30, clean_start=True)
    client.loop_start()
    if not done.wait(8):
        report["errors"].append("no message within 8 s")
    client.loop_stop()
except Exception as err:
    report["errors"].append(repr(err))
print(json.dumps(report))
`

interface PahoReport {
  paho: string
  errors: string[]
  connack?: { reasonCode: number, properties: Record<string, unknown> | null }
  granted?: number[]
  message?: { topic: string, payload: string, qos: number, properties: Record<string, unknown> | null }
}

t.test('Paho Python (MQTT 5) against culex', async (t) => {
  const python = await findPython()
  if (python === undefined) {
    t.fail('python3-paho-mqtt is not installed (.ci/run installs it: apt-get install python3-paho-mqtt)')
    return
  }
  const server = await startTestServer(t, { topicAliasMaximum: 5 })
  const dir = mkdtempSync(join(tmpdir(), 'culex-paho-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const script = join(dir, 'paho_client.py')
  writeFileSync(script, SCRIPT)

  const topic = 'interop/paho/v5'
  const js = await connectClient(t, tcpUrl(server))
  const seenByJs = collect(js)
  await js.subscribeAsync(topic, { qos: 1 })

  const { stdout } = await run(python, [script, '127.0.0.1', String(tcpPort(server)), topic, 'paho-culex'], { timeout: 20000 })
  const report = JSON.parse(stdout.trim().split('\n').pop() as string) as PahoReport
  t.comment(`paho-mqtt ${report.paho} (${python})`)
  t.same(report.errors, [], 'no errors in the Paho client')

  t.equal(report.connack?.reasonCode, 0, 'CONNACK 0x00')
  t.equal(report.connack?.properties?.TopicAliasMaximum, 5, 'Paho reads the CONNACK capabilities')
  t.same(report.granted, [1], 'SUBACK granted QoS 1 to the subscription with identifier 42')

  const m = report.message
  t.equal(m?.topic, topic)
  t.equal(m?.payload, 'hello from paho')
  t.equal(m?.qos, 1)
  t.same(m?.properties?.SubscriptionIdentifier, [42], '[MQTT-3.3.4-3] the Subscription Identifier comes back')
  t.same(m?.properties?.UserProperty, [['origin', 'paho'], ['n', '1']], '[MQTT-3.3.2-17] [MQTT-3.3.2-18] User Properties unaltered and in order')
  const expiry = m?.properties?.MessageExpiryInterval as number
  t.ok(expiry <= 60 && expiry >= 59, `[MQTT-3.3.2-6] Message Expiry Interval ${expiry}`)
  t.equal(m?.properties?.ContentType, 'text/plain', '[MQTT-3.3.2-20]')

  const [fromPaho] = await seenByJs.next(1)
  t.equal(fromPaho?.payload.toString(), 'hello from paho', 'MQTT.js got the Paho message too')
  t.same(fromPaho?.properties?.userProperties, { origin: 'paho', n: '1' })
  t.equal(fromPaho?.properties?.subscriptionIdentifier, undefined, 'without Paho\'s subscription identifier')
})
