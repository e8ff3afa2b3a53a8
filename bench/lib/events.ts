import { randomBytes } from 'node:crypto';

const RUN = randomBytes(4).toString('hex');
let counter = 0;

/** A realistic single event with a fresh event_id; `ts` places it in the scenario's own window. */
export function benchEvent(ts: number): Record<string, unknown> {
  const n = counter++;
  return {
    event_id: `${RUN}-${n}`,
    type: n % 5 === 0 ? 'click' : 'page_view',
    user_id: `user-${n % 5000}`,
    timestamp: ts,
    page_url: `https://example.com/page/${n % 200}`,
    referrer: 'https://google.com',
  };
}

/** `count` events spread over the minute buckets of [from, from + spanMs). */
export function benchBatch(count: number, from: number, spanMs: number): Record<string, unknown>[] {
  return Array.from({ length: count }, (_, i) => benchEvent(from + ((counter + i) % spanMs)));
}
