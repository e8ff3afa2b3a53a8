import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import cliProgress from 'cli-progress';
import { v7 as uuidv7 } from 'uuid';

/**
 * `tally send N`: what an earlier system's `test-producer.sh N` did (README.md, "Compatibility
 * with the earlier systems") — random, realistic user activity in its `POST /activity` shape —
 * against a running Tally, with a progress bar and a summary.
 * Each event carries an event_id, so a retried request never counts twice.
 */
export interface SendOptions {
  count: number;
  url: string;
  /** Events per second; undefined sends as fast as `concurrency` allows. */
  rate: number | undefined;
  concurrency: number;
  apiKey: string | undefined;
  /** Progress bar output (stderr); null for none. */
  progress: NodeJS.WritableStream | null;
}

export interface SendSummary {
  sent: number;
  accepted: number;
  duplicates: number;
  /** Accepted events of deleted users: dropped, not stored (embedded mode says so; Kafka cannot). */
  dropped: number;
  rejected: number;
  failed: number;
  /** Response count by HTTP status (0 = no response). */
  statuses: Record<string, number>;
  seconds: number;
}

const ACTIVITY_TYPES = [
  ['page_view', 60],
  ['click', 20],
  ['login', 5],
  ['logout', 4],
  ['signup', 3],
  ['add_to_cart', 5],
  ['purchase', 3],
] as const;
const PAGES = ['/', '/home', '/pricing', '/blog', '/blog/launch', '/docs', '/docs/api', '/signup', '/cart'];
const REFERRERS = ['https://google.com', 'https://news.ycombinator.com', 'https://twitter.com', ''];
const MAX_ATTEMPTS = 4;

export function randomActivity(site = 'https://example.com'): Record<string, unknown> {
  const total = ACTIVITY_TYPES.reduce((sum, [, weight]) => sum + weight, 0);
  let pick = randomInt(total);
  let type: string = ACTIVITY_TYPES[0][0];
  for (const [name, weight] of ACTIVITY_TYPES) {
    if (pick < weight) {
      type = name;
      break;
    }
    pick -= weight;
  }
  const referrer = REFERRERS[randomInt(REFERRERS.length)];
  return {
    event_id: uuidv7(),
    user_id: `user_${randomInt(1, 201)}`,
    activity_type: type,
    timestamp: new Date().toISOString(),
    metadata: {
      page_url: `${site}${PAGES[randomInt(PAGES.length)]}`,
      ...(referrer ? { referrer } : {}),
    },
  };
}

export async function sendActivity(options: SendOptions): Promise<SendSummary> {
  const endpoint = new URL('/activity', options.url);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.apiKey !== undefined) headers.authorization = `Bearer ${options.apiKey}`;
  const summary: SendSummary = {
    sent: 0,
    accepted: 0,
    duplicates: 0,
    dropped: 0,
    rejected: 0,
    failed: 0,
    statuses: {},
    seconds: 0,
  };
  const bar =
    options.progress === null
      ? undefined
      : new cliProgress.SingleBar(
          {
            stream: options.progress,
            format: 'sending [{bar}] {value}/{total} events | {eta_formatted} left',
          },
          cliProgress.Presets.shades_classic,
        );
  bar?.start(options.count, 0);
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < options.count; i = next++) {
      if (options.rate !== undefined) {
        const due = started + (i * 1000) / options.rate;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
      }
      await sendOne(endpoint, headers, randomActivity(), summary);
      bar?.increment();
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, options.count) }, worker));
  bar?.stop();
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

async function sendOne(
  endpoint: URL,
  headers: Record<string, string>,
  event: Record<string, unknown>,
  summary: SendSummary,
): Promise<void> {
  summary.sent++;
  const body = JSON.stringify(event);
  for (let attempt = 1; ; attempt++) {
    let status = 0;
    let retryAfterMs = 250 * 2 ** attempt;
    try {
      const res = await fetch(endpoint, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(30_000),
      });
      status = res.status;
      const answer = (await res.json().catch(() => ({}))) as {
        accepted?: number;
        duplicates?: number;
        dropped?: number;
      };
      if (res.ok) {
        summary.statuses[status] = (summary.statuses[status] ?? 0) + 1;
        summary.accepted += answer.accepted ?? 1;
        summary.duplicates += answer.duplicates ?? 0;
        summary.dropped += answer.dropped ?? 0;
        return;
      }
      const retryAfter = Number(res.headers.get('retry-after'));
      if (retryAfter > 0) retryAfterMs = retryAfter * 1000;
    } catch {
      // connection refused, reset or timed out: status stays 0 and the request is retried
    }
    const retriable = status === 0 || status === 429 || status === 503;
    if (!retriable || attempt >= MAX_ATTEMPTS) {
      summary.statuses[status] = (summary.statuses[status] ?? 0) + 1;
      if (status >= 400 && status < 500 && status !== 429) summary.rejected++;
      else summary.failed++;
      return;
    }
    await sleep(Math.min(retryAfterMs, 5000));
  }
}

export function formatSummary(s: SendSummary, url: string): string {
  const statuses = Object.entries(s.statuses)
    .map(([status, n]) => `${status === '0' ? 'no response' : status}: ${n}`)
    .join(', ');
  const rate = s.seconds > 0 ? Math.round(s.sent / s.seconds) : s.sent;
  return [
    `sent ${s.sent} events to ${url} in ${s.seconds.toFixed(1)} s (${rate} events/s)`,
    `accepted: ${s.accepted}`,
    `already known (re-sent event_id): ${s.duplicates}`,
    `dropped (user deleted): ${s.dropped}`,
    `rejected: ${s.rejected}`,
    `failed: ${s.failed}`,
    `responses: ${statuses || 'none'}`,
  ].join('\n');
}
