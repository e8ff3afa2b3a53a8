import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RawPartitions } from '../../src/store/partitions.ts';
import { refreshSessions, refreshSessionsQuery } from '../../src/store/sessions-store.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import { prng } from '../helpers/oracle.ts';
import {
  DIMENSIONS,
  insertRaw,
  sessionize,
  storedEvents,
  storedVisits,
  type Dimension,
  type SessionizerEvent,
} from '../helpers/sessionizer.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const MINUTE = 60_000;
const TIMEOUT = 30 * MINUTE;
const USERS = 300;
const PRIOR_VISITS = 20;

/**
 * What tally.refresh_sessions costs a batch: 1000 fresh events over 300 users who each have ~20
 * visits stored, late events among them (inside, next to and between visits) across daily
 * partitions. Reported (EXPLAIN ANALYZE's execution time), not asserted: the machine decides it.
 */
test(
  'refresh_sessions on a 1000-event batch over 300 users with 20 visits each: cost reported, visits exact',
  { timeout: 300_000 },
  async (t) => {
    const db = await startTestPostgres(t);
    const today = Math.floor(Date.now() / DAY) * DAY;
    const base = today - 2 * DAY;
    await new RawPartitions(db.pool, undefined).ensure([0, 1, 2].map((d) => base + d * DAY));
    const random = prng(2020);
    const dims = Object.fromEntries(DIMENSIONS.map((d) => [d, 'x'])) as Record<Dimension, string>;
    const event = (user: number, eventId: string, ts: number): SessionizerEvent => ({
      ...dims,
      project: 'cost',
      userId: `user-${user}`,
      eventId,
      ts,
      type: random() < 0.7 ? 'page_view' : 'click',
      sessionId: null,
      path: `/p${Math.floor(random() * 20)}`,
      isBot: false,
    });
    // Visits of three events, 2 hours apart: 20 per user over 40 hours.
    const visitStart = (user: number, visit: number) => base + visit * 2 * HOUR + user * 1000;
    const prior: SessionizerEvent[] = [];
    for (let u = 0; u < USERS; u++)
      for (let v = 0; v < PRIOR_VISITS; v++)
        for (let i = 0; i < 3; i++)
          prior.push(event(u, `prior-${u}-${v}-${i}`, visitStart(u, v) + i * 5 * MINUTE));

    const client = await db.pool.connect();
    try {
      for (let i = 0; i < prior.length; i += 1000) {
        await client.query('BEGIN');
        await refreshSessions(client, await insertRaw(client, prior.slice(i, i + 1000)), TIMEOUT);
        await client.query('COMMIT');
      }
      await client.query('ANALYZE tally.events, tally.sessions');
      const measure = async (batch: SessionizerEvent[]) => {
        await client.query('BEGIN');
        const fresh = await insertRaw(client, batch);
        const call = refreshSessionsQuery(fresh, TIMEOUT);
        const { rows } = await client.query<{ 'QUERY PLAN': [{ 'Execution Time': number }] }>(
          `EXPLAIN (ANALYZE, FORMAT JSON) ${call.text}`,
          call.values,
        );
        await client.query('COMMIT');
        return rows[0]['QUERY PLAN'][0]['Execution Time'].toFixed(1);
      };
      // Live: every user's events extend the visit in progress (the 21st), round after round.
      const live: string[] = [];
      for (let round = 0; round < 5; round++) {
        const at = visitStart(0, PRIOR_VISITS) + round * 5 * MINUTE;
        live.push(
          await measure(
            Array.from({ length: 1000 }, (_, i) =>
              event(i % USERS, `live-${round}-${i}`, at + Math.floor(random() * MINUTE)),
            ),
          ),
        );
      }
      // Late: anywhere in the 42 hours, inside, next to and between stored visits.
      const late: string[] = [];
      for (let round = 0; round < 5; round++) {
        const batch = Array.from({ length: 1000 }, (_, i) => {
          const u = Math.floor(random() * USERS);
          return event(
            u,
            `late-${round}-${i}`,
            visitStart(u, Math.floor(random() * 21)) + Math.floor(random() * HOUR),
          );
        });
        late.push(await measure(batch));
      }
      t.diagnostic(
        `refresh_sessions, 1000 fresh events over ${USERS} users with ${PRIOR_VISITS} visits each, ms per batch: live ${live.join(', ')}; late ${late.join(', ')}`,
      );
      const expected = sessionize(await storedEvents(client, 'cost'), TIMEOUT);
      assert.ok(
        expected.length > USERS * PRIOR_VISITS * 0.8,
        `late events merged visits, most stay (${expected.length})`,
      );
      assert.deepEqual(await storedVisits(client, 'cost'), expected);
    } finally {
      client.release();
    }
  },
);
