/**
 * MQTT 5.0 reason codes (spec 2.4, table 2-6), the one table culex uses.
 * Values below 0x80 are success or normal outcomes, 0x80 and above are failures.
 */
export const ReasonCode = {
  Success: 0x00,
  GrantedQoS1: 0x01,
  GrantedQoS2: 0x02,
  DisconnectWithWill: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  Banned: 0x8a,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QoSNotSupported: 0x9b,
  UseAnotherServer: 0x9c,
  ServerMoved: 0x9d,
  SharedSubscriptionsNotSupported: 0x9e,
  ConnectionRateExceeded: 0x9f,
  MaximumConnectTime: 0xa0,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2
} as const

export type ReasonCodeName = keyof typeof ReasonCode
export type ReasonCodeValue = (typeof ReasonCode)[ReasonCodeName]

const names = new Map<number, ReasonCodeName>()
for (const [name, value] of Object.entries(ReasonCode) as Array<[ReasonCodeName, number]>) {
  if (!names.has(value)) names.set(value, name)
}

/** A readable name for logs, e.g. `0x8b ServerShuttingDown`. */
export function describeReasonCode (code: number | undefined): string {
  if (code === undefined) return 'none'
  const hex = '0x' + code.toString(16).padStart(2, '0')
  const name = names.get(code)
  return name ? `${hex} ${name}` : hex
}

/** [MQTT-2.4] a reason code of 0x80 or more indicates failure. */
export function isFailure (code: number | undefined): boolean {
  return code !== undefined && code >= 0x80
}

/**
 * MQTT 3.1.1 CONNACK return codes (spec 3.1.1, 3.2.2.3) and the MQTT 5
 * reason code each maps to, used when one rejection must be told to both.
 */
export const ConnackReturnCode311 = {
  Accepted: 0,
  UnacceptableProtocolVersion: 1,
  IdentifierRejected: 2,
  ServerUnavailable: 3,
  BadUserNameOrPassword: 4,
  NotAuthorized: 5
} as const

export function v5ToV311ConnackCode (code: number): number {
  switch (code) {
    case ReasonCode.Success: return ConnackReturnCode311.Accepted
    case ReasonCode.UnsupportedProtocolVersion: return ConnackReturnCode311.UnacceptableProtocolVersion
    case ReasonCode.ClientIdentifierNotValid: return ConnackReturnCode311.IdentifierRejected
    case ReasonCode.BadUserNameOrPassword: return ConnackReturnCode311.BadUserNameOrPassword
    case ReasonCode.NotAuthorized:
    case ReasonCode.Banned:
    case ReasonCode.BadAuthenticationMethod: return ConnackReturnCode311.NotAuthorized
    default: return ConnackReturnCode311.ServerUnavailable
  }
}

export function v311ToV5ConnackCode (returnCode: number): number {
  switch (returnCode) {
    case ConnackReturnCode311.Accepted: return ReasonCode.Success
    case ConnackReturnCode311.UnacceptableProtocolVersion: return ReasonCode.UnsupportedProtocolVersion
    case ConnackReturnCode311.IdentifierRejected: return ReasonCode.ClientIdentifierNotValid
    case ConnackReturnCode311.BadUserNameOrPassword: return ReasonCode.BadUserNameOrPassword
    case ConnackReturnCode311.NotAuthorized: return ReasonCode.NotAuthorized
    default: return ReasonCode.ServerUnavailable
  }
}
