import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deletionLine } from '../../src/cli/user-commands.ts';
import type { UserDeletion } from '../../src/store/user-deletion.ts';

const base: UserDeletion = {
  project: 'shop',
  user_id: 'u-1',
  events: 3,
  visits: 1,
  dead_letters: 0,
  version: 12,
  inexact_days: [],
};

test('tally users delete says how many dead letters went, and only when some did', () => {
  assert.equal(
    deletionLine(base),
    'deleted user "u-1" of project shop: 3 events and 1 visit removed, every rollup corrected (data version 12); its later events are dropped\n',
  );
  assert.equal(
    deletionLine({ ...base, dead_letters: 2 }),
    'deleted user "u-1" of project shop: 3 events and 1 visit removed, every rollup corrected (data version 12); 2 dead letters removed; its later events are dropped\n',
  );
  assert.equal(
    deletionLine({ ...base, events: 0, visits: 0, version: null, dead_letters: 1 }),
    'deleted user "u-1" of project shop: no event or visit was stored; 1 dead letter removed; its later events are dropped\n',
  );
  assert.match(
    deletionLine({ ...base, events: 0, visits: 0, version: null }),
    /: nothing was stored about it;/,
  );
});
