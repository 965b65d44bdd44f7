/**
 * A client id or group name as one topic level of a topic the broker
 * publishes. A client id may contain `/`, `+` or `#` (spec 3.1.3.1 allows any
 * UTF-8 string), which would split the level or make the name invalid:
 * [MQTT-4.7.1-1] wildcards must not appear in a topic name, and [MQTT-4.7.3-2]
 * no U+0000. Those characters, and `%` itself, are percent-encoded; every
 * other character stays as it is, so ordinary ids read unchanged.
 */
export function topicLevel (name: string): string {
  return name.replace(/[%/+#\u0000]/g, c => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'))
}
