import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { AssignedPositions } from '../../src/process/assigned-positions.ts';
import { partitionKey } from '../../src/store/positions.ts';

test('assigned(topic, partition) answers as has(partitionKey(…)) through any sequence of questions, replacements and advances', () => {
  const topic = fc.constantFrom('a', 'b', 'a:1');
  const partition = fc.integer({ min: 0, max: 3 });
  const step = fc.oneof(
    fc.record({ ask: fc.tuple(topic, partition) }),
    fc.record({ replace: fc.uniqueArray(fc.tuple(topic, partition), { maxLength: 6 }) }),
    fc.record({ advance: fc.array(fc.tuple(topic, partition), { maxLength: 3 }) }),
  );
  fc.assert(
    fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
      const positions = new AssignedPositions();
      for (const s of steps) {
        if ('ask' in s) {
          const [t, p] = s.ask;
          assert.equal(positions.assigned(t, p), positions.has(partitionKey(t, p)));
        } else if ('replace' in s) {
          positions.replace(new Map(s.replace.map(([t, p]) => [partitionKey(t, p), null])));
        } else {
          positions.advance(s.advance.map(([t, p]) => ({ topic: t, partition: p, next: 1 })));
        }
      }
    }),
    { numRuns: 500 },
  );
});
