/**
 * Waiting in tests: `sleep` for a fixed time, `waitFor` for a condition.
 * A wait that must succeed is `await waitFor(...)` (a timeout fails the test
 * with `what` in its message); a wait that is an assertion of its own is
 * `await t.resolves(waitFor(...), 'message')`; a wait whose timeout is
 * acceptable says so with `.catch`.
 */
export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

export interface WaitOptions {
  /** give up after this many milliseconds (default 5000) */
  timeout?: number
  /** milliseconds between two checks (default 10) */
  step?: number
  /** what is awaited, for the failure message; a function is called only when the wait fails, so it can show the last state */
  what?: string | (() => string)
}

/**
 * Calls `check` (sync or async) until it returns true; rejects once
 * `timeout` has passed with `check` still false. `check` runs at least once
 * after the timeout, so a slow machine gets the full time.
 */
export async function waitFor (check: () => boolean | Promise<boolean>, opts: WaitOptions = {}): Promise<void> {
  const { timeout = 5000, step = 10, what = 'the condition' } = opts
  const deadline = Date.now() + timeout
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`${typeof what === 'function' ? what() : what}: not within ${timeout} ms`)
    await sleep(step)
  }
}
