import { setTimeout as sleep } from 'node:timers/promises';

function describe(err: unknown): string {
  return err instanceof Error ? err.message : JSON.stringify(err);
}

/** Polls `probe` until it returns true; fails with `what` (and the last probe error) at the deadline. */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean> | boolean,
  timeoutMs = 60_000,
  everyMs = 200,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}${lastError ? ` (last error: ${describe(lastError)})` : ''}`,
      );
    await sleep(everyMs);
  }
}

/**
 * Calls `attempt` until it resolves and returns its value; an error means "not yet" until the
 * deadline, when the last one is thrown with `what`.
 */
export async function eventually<T>(
  what: string,
  attempt: () => Promise<T>,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`${what} did not succeed within ${timeoutMs} ms: ${describe(err)}`, { cause: err });
    }
    await sleep(everyMs);
  }
}
