import { setTimeout as sleep } from 'node:timers/promises';

export async function summaryEvents(baseUrl: string, from: number, to: number): Promise<number> {
  const q = new URLSearchParams({ from: new Date(from).toISOString(), to: new Date(to).toISOString() });
  const res = await fetch(`${baseUrl}/v1/stats/summary?${q.toString()}`);
  if (!res.ok) throw new Error(`summary answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { events: number }).events;
}

/** Polls the summary until it counts `expected` events in [from, to); returns when it did (ms). */
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
    const n = await summaryEvents(baseUrl, from, to);
    if (n >= expected) return performance.now();
    if (performance.now() > deadline)
      throw new Error(`only ${n} of ${expected} events visible after ${timeoutMs} ms`);
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
