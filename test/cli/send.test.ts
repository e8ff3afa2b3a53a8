import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatSummary } from '../../src/cli/send.ts';

test('tally send sums the 202s’ dropped events apart from the duplicates', () => {
  const text = formatSummary(
    {
      sent: 5,
      accepted: 5,
      duplicates: 1,
      dropped: 2,
      rejected: 0,
      failed: 0,
      statuses: { 202: 5 },
      seconds: 1,
    },
    'http://x',
  );
  assert.match(text, /^already known \(re-sent event_id\): 1$/m);
  assert.match(text, /^dropped \(user deleted\): 2$/m);
});
