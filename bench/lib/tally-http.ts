import { setTimeout as sleep } from 'node:timers/promises';

/** The summary's event count over [from, to); `signal` abandons a slow answer. */
export async function summaryEvents(
  baseUrl: string,
  from: number,
  to: number,
  signal?: AbortSignal,
): Promise<number> {
  const q = new URLSearchParams({ from: new Date(from).toISOString(), to: new Date(to).toISOString() });
  const res = await fetch(`${baseUrl}/v1/stats/summary?${q.toString()}`, { signal });
  if (!res.ok) throw new Error(`summary answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { events: number }).events;
}

/** What waitForCount throws when the count is not reached in time. */
export class NotVisibleError extends Error {
  override name = 'NotVisibleError';
}

/**
 * Polls the summary until it counts `expected` events in [from, to); returns when it did (ms).
 * Throws NotVisibleError after `timeoutMs`, an answer still awaited then included: a server
 * that takes minutes to answer one poll fails the wait at its deadline, not minutes later.
 */
export async function waitForCount(
  baseUrl: string,
  from: number,
  to: number,
  expected: number,
  timeoutMs: number,
  pollMs = 5,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const left = Math.max(1, Math.ceil(deadline - performance.now()));
    const n = await summaryEvents(baseUrl, from, to, AbortSignal.timeout(left)).catch((err: unknown) => {
      if (err instanceof DOMException && err.name === 'TimeoutError')
        throw new NotVisibleError(`the summary did not answer within ${timeoutMs} ms`);
      throw err;
    });
    if (n >= expected) return performance.now();
    if (performance.now() > deadline)
      throw new NotVisibleError(`only ${n} of ${expected} events visible after ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}

export async function postEvents(baseUrl: string, events: unknown): Promise<void> {
  const res = await fetch(`${baseUrl}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(events),
  });
  if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${await res.text()}`);
}
