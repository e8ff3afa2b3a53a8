import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { TallyEvent } from '../../src/event/types.ts';
import { rollupUserRows } from '../../src/store/rollup-deltas.ts';

const MIDNIGHT = Date.parse('2026-03-01T00:00:00Z');

function event(project: string, userId: string, ts: number): TallyEvent {
  return {
    project,
    eventId: 'e',
    type: 'page_view',
    userId,
    ts,
    receivedAt: ts,
    pageUrl: null,
    referrer: null,
    sessionId: null,
    userAgent: null,
    country: null,
    service: null,
    properties: null,
  };
}

test('bot events derive no (bucket, user) rows: the rows are those of the other events alone', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          project: fc.constantFrom('a', 'b'),
          user: fc.constantFrom('u1', 'u2', 'u3'),
          offset: fc.integer({ min: 0, max: 3 * 86_400_000 }),
          bot: fc.boolean(),
        }),
        { maxLength: 60 },
      ),
      (items) => {
        const events = items.map((i) => event(i.project, i.user, MIDNIGHT + i.offset));
        const isBot = items.map((i) => i.bot);
        const humanAt = events.flatMap((_e, i) => (isBot[i] ? [] : [i]));
        const humans = rollupUserRows(humanAt.map((i) => events[i]));
        // The same rows, each derived by the same events (indexes into `events`, not `humans`).
        const expected = { ...humans, events: humans.events.map((es) => es.map((j) => humanAt[j])) };
        assert.deepEqual(rollupUserRows(events, isBot), expected);
      },
    ),
    { numRuns: 300 },
  );
});

test('a user seen only as a bot has no row; seen also as a human, the human event’s rows', () => {
  const events = [
    event('p', 'bot', MIDNIGHT),
    event('p', 'both', MIDNIGHT),
    event('p', 'both', MIDNIGHT + 86_400_000),
  ];
  const rows = rollupUserRows(events, [true, false, true]);
  assert.deepEqual(rows.userId, ['both', 'both', 'both']);
  assert.deepEqual(rows.bucket, [MIDNIGHT, MIDNIGHT, MIDNIGHT]);
  assert.equal(rollupUserRows(events, [true, true, true]).userId.length, 0);
});
