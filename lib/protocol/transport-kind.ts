/** The transports a client can connect over: a wire fact the gateway, the observer and the metrics share. */
export type Transport = 'tcp' | 'tls' | 'ws' | 'wss'
