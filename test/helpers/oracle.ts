import type { TallyEvent } from '../../src/event/types.ts';

/** Expected answers computed from the events a test produced itself (STYLE.md: "an oracle"). */
export interface OracleEvent {
  event_id: string;
  type: string;
  user_id: string;
  /** True event time, epoch ms. */
  ts: number;
  page_url?: string;
}

export type Unit = 'minute' | 'hour' | 'day';
const UNIT_MS: Record<Unit, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** Bucket start for a fixed-offset zone (offsetMs east of UTC): enough for UTC and Asia/Kolkata. */
export function bucketStart(ts: number, unit: Unit, offsetMs: number): number {
  const ms = UNIT_MS[unit];
  return Math.floor((ts + offsetMs) / ms) * ms - offsetMs;
}

export class Oracle {
  readonly events: OracleEvent[] = [];

  add(e: OracleEvent): void {
    this.events.push(e);
  }

  inRange(from: number, to: number): OracleEvent[] {
    return this.events.filter((e) => e.ts >= from && e.ts < to);
  }

  summary(from: number, to: number) {
    const evs = this.inRange(from, to);
    return {
      events: evs.length,
      page_views: evs.filter((e) => e.type === 'page_view').length,
      unique_users: new Set(evs.map((e) => e.user_id)).size,
    };
  }

  /** metric per bucket start (epoch ms), only for buckets that have data. */
  series(
    metric: 'events' | 'page_views' | 'unique_users',
    unit: Unit,
    offsetMs: number,
    filter: (e: OracleEvent) => boolean = () => true,
  ) {
    const counts = new Map<number, number>();
    const users = new Map<number, Set<string>>();
    for (const e of this.events) {
      if (!filter(e)) continue;
      if (metric === 'page_views' && e.type !== 'page_view') continue;
      const b = bucketStart(e.ts, unit, offsetMs);
      if (metric === 'unique_users') {
        const set = users.get(b) ?? new Set<string>();
        set.add(e.user_id);
        users.set(b, set);
      } else {
        counts.set(b, (counts.get(b) ?? 0) + 1);
      }
    }
    if (metric === 'unique_users') return new Map([...users].map(([b, s]) => [b, s.size]));
    return counts;
  }

  topPages(): { page_url: string; views: number }[] {
    const views = new Map<string, number>();
    for (const e of this.events)
      if (e.type === 'page_view' && e.page_url) views.set(e.page_url, (views.get(e.page_url) ?? 0) + 1);
    return [...views]
      .map(([page_url, n]) => ({ page_url, views: n }))
      .sort((a, b) => b.views - a.views || (a.page_url < b.page_url ? -1 : 1));
  }

  eventTypes(): Map<string, number> {
    const m = new Map<string, number>();
    for (const e of this.events) m.set(e.type, (m.get(e.type) ?? 0) + 1);
    return m;
  }

  userEvents(userId: string): OracleEvent[] {
    return this.events.filter((e) => e.user_id === userId).sort((a, b) => b.ts - a.ts);
  }
}

/** Small seeded PRNG (mulberry32), so a failing run can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs `tasks` with at most `concurrency` in flight. */
export async function pool<T>(tasks: (() => Promise<T>)[], concurrency: number): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await tasks[i]();
      }
    }),
  );
  return results;
}

/** The event the batch writer would get for `e` (tests that call BatchWriter directly). */
export function toTallyEvent(e: OracleEvent, project = 'default'): TallyEvent {
  return {
    project,
    eventId: e.event_id,
    type: e.type,
    userId: e.user_id,
    ts: e.ts,
    receivedAt: e.ts,
    pageUrl: e.page_url ?? null,
    referrer: null,
    sessionId: null,
    userAgent: null,
    country: null,
    service: null,
    properties: null,
  };
}
