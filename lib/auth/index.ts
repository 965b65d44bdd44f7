/**
 * Authentication and authorization building blocks:
 * password file (scrypt + SCRAM credentials), `culex passwd`, SCRAM-SHA-256
 * server exchange, mosquitto-syntax ACLs, and login throttling.
 */
export * from './password-file.js'
export * from './passwd-command.js'
export * from './scram.js'
export * from './acl.js'
export * from './topic-match.js'
export * from './rate-limit.js'
