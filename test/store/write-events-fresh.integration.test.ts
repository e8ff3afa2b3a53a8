import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { deriveDimensions } from '../../src/event/derive.ts';
import type { TallyEvent } from '../../src/event/types.ts';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import type { OracleEvent } from '../helpers/oracle.ts';
import { expectedRollups, storedState } from '../helpers/stored-state.ts';

// The writer alone: bots are pinned by their own rule over the real derivation.
const BOT_UA = 'TestBot/1.0';
const derive = (e: TallyEvent) => ({ ...deriveDimensions(e), bot: e.userAgent === BOT_UA });
const MIDNIGHT = Date.UTC(2024, 2, 1);

/**
 * An event_id drawn from a few, so that ids come again: as exact duplicates of an event sent
 * before, or re-sent with another time, user or bot flag. Times on and off minute, hour and day
 * boundaries, so that a re-send moves to another bucket at some levels only.
 */
const item = fc.oneof(
  fc.record({
    kind: fc.constant('event' as const),
    id: fc.integer({ min: 0, max: 7 }),
    user: fc.constantFrom('u1', 'u2', 'u3'),
    ts: fc.constantFrom(0, 1, 59_999, 60_000, 3_600_000, 86_399_999, 86_400_000).map((ms) => MIDNIGHT + ms),
    bot: fc.boolean(),
    type: fc.constantFrom('page_view', 'click'),
  }),
  fc.record({ kind: fc.constant('again' as const), pick: fc.nat() }),
);

test(
  'the user sets (minute arrays, hour and day bits) are those of the stored events, whatever is re-sent in which batch',
  { timeout: 300_000 },
  async (t) => {
    const db = await startTestPostgres(t);
    await fc.assert(
      fc.asyncProperty(
        fc.array(item, { minLength: 1, maxLength: 30 }),
        fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 30 }),
        async (items, sizes) => {
          const project = `p-${randomUUID()}`;
          const sent: TallyEvent[] = [];
          for (const it of items) {
            if (it.kind === 'again') {
              if (sent.length > 0) sent.push(sent[it.pick % sent.length]);
              continue;
            }
            sent.push({
              project,
              eventId: `e${it.id}`,
              type: it.type,
              userId: it.user,
              ts: it.ts,
              receivedAt: it.ts,
              pageUrl: '/a',
              referrer: null,
              sessionId: null,
              userAgent: it.bot ? BOT_UA : 'Mozilla/5.0',
              country: null,
              service: null,
              properties: null,
            });
          }
          // One writer for all batches: what it remembers of one batch (known-user-rows.ts) must
          // not make it skip a row another batch needs.
          const writer = new BatchWriter({
            pool: db.pool,
            partitions: new RawPartitions(db.pool, undefined),
            storeRaw: true,
            derive,
          });
          for (let i = 0, b = 0; i < sent.length; b++) {
            const n = sizes[b % sizes.length];
            await writer.write({ events: sent.slice(i, i + n) });
            i += n;
          }

          // What is stored raw is the first event sent with each id.
          const first = new Map<string, TallyEvent>();
          for (const e of sent) if (!first.has(e.eventId)) first.set(e.eventId, e);
          const { rows } = await db.pool.query<{ k: string }>(
            `SELECT event_id || '|' || user_id || '|' || (extract(epoch from ts) * 1000)::bigint || '|' || is_bot AS k
               FROM tally.events WHERE project = $1`,
            [project],
          );
          const raw = [...first.values()].map(
            (e) => `${e.eventId}|${e.userId}|${e.ts}|${e.userAgent === BOT_UA}`,
          );
          assert.deepEqual(rows.map((r) => r.k).sort(), raw.sort(), 'raw rows: the first of each id');

          // From scratch, over the stored events that are not bots.
          const humans: OracleEvent[] = [...first.values()]
            .filter((e) => e.userAgent !== BOT_UA)
            .map((e) => ({ event_id: e.eventId, type: e.type, user_id: e.userId, ts: e.ts, page_url: '/a' }));
          const expected = expectedRollups(humans);
          const stored = await storedState(db.pool, project);
          assert.deepEqual(stored.users, expected.users, 'user sets');
          assert.equal(stored.userBitCount, expected.users.length, 'no other bit is set');
          assert.deepEqual(stored.events, expected.events, 'rollup_events');
          assert.deepEqual(stored.pages, expected.pages, 'rollup_pages');
        },
      ),
      { numRuns: 150 },
    );
  },
);
