// Broker process for the persistence benchmark: plain aedes 2.0.0-beta.1 on
// one store, on 127.0.0.1. `node broker-process.js <memory|level|aedes-memory> <dataDir> [--fsync]`
// prints `ready <port>`.
import { createServer, type AddressInfo } from 'node:net'
import { Aedes } from 'aedes'
import { createPersistence } from '../../lib/persistence/index.js'

const [kind, dataDir, ...flags] = process.argv.slice(2)
const persistence = kind === 'memory'
  ? createPersistence({ kind: 'memory' })
  : kind === 'level'
    ? createPersistence({ kind: 'level', dataDir, fsync: flags.includes('--fsync') })
    : undefined // aedes' own in-memory aedes-persistence, for reference
const broker = await Aedes.createBroker(persistence === undefined ? {} : { persistence })
const server = createServer((socket) => { broker.handle(socket) })
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`ready ${(server.address() as AddressInfo).port}\n`)
})
process.on('SIGTERM', () => {
  broker.close(() => {
    server.close()
    void persistence?.close().then(() => process.exit(0))
    if (persistence === undefined) process.exit(0)
  })
})
