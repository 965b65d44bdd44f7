import t from 'tap'
import { version } from '../lib/version.js'
t.test('version', async (t) => { t.equal(typeof version, 'string') })
