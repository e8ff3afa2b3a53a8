import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizeEvent } from '../../src/event/normalize.ts';

const ctx = { project: 'p', receivedAt: Date.UTC(2024, 6, 1, 12), maxFutureSkewMs: 300_000 };
const base = { type: 'page_view', user_id: 'u1' };
const UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148';

test('user_agent and country are kept; country is stored upper case', () => {
  const r = normalizeEvent({ ...base, user_agent: UA, country: 'de' }, ctx);
  assert.ok(r.ok);
  assert.equal(r.event.userAgent, UA);
  assert.equal(r.event.country, 'DE');
  const upper = normalizeEvent({ ...base, country: 'US' }, ctx);
  assert.ok(upper.ok);
  assert.equal(upper.event.country, 'US');
});

test('absent, null or empty user_agent and country mean unknown', () => {
  for (const extra of [{}, { user_agent: null, country: null }, { user_agent: '', country: '' }]) {
    const r = normalizeEvent({ ...base, ...extra }, ctx);
    assert.ok(r.ok);
    assert.equal(r.event.userAgent, null);
    assert.equal(r.event.country, null);
  }
});

test('user_agent up to 1024 characters; longer is a field error', () => {
  const ok = normalizeEvent({ ...base, user_agent: 'a'.repeat(1024) }, ctx);
  assert.ok(ok.ok);
  assert.equal(ok.event.userAgent?.length, 1024);
  const long = normalizeEvent({ ...base, user_agent: 'a'.repeat(1025) }, ctx);
  assert.deepEqual(long, {
    ok: false,
    issues: [
      {
        field: 'user_agent',
        code: 'TALLY_FIELD_TOO_LONG',
        message: 'user_agent must be at most 1024 characters',
      },
    ],
  });
  const typed = normalizeEvent({ ...base, user_agent: 7 }, ctx);
  assert.ok(!typed.ok);
  assert.deepEqual(
    typed.issues.map((i) => [i.field, i.code]),
    [['user_agent', 'TALLY_INVALID_TYPE']],
  );
  const nul = normalizeEvent({ ...base, user_agent: 'a\u0000b' }, ctx);
  assert.ok(!nul.ok);
  assert.equal(nul.issues[0].field, 'user_agent');
});

test('a country that is not two letters is a field error naming country', () => {
  for (const bad of ['USA', 'u', 'D3', 'Ü1', ' DE', 'DE ', '12', 'zz-']) {
    const r = normalizeEvent({ ...base, country: bad }, ctx);
    assert.ok(!r.ok, bad);
    assert.equal(r.issues.length, 1);
    assert.equal(r.issues[0].field, 'country');
    assert.equal(r.issues[0].code, 'TALLY_INVALID_VALUE');
    assert.match(r.issues[0].message, /ISO 3166-1 alpha-2/);
  }
  for (const bad of [49, true, ['DE'], { code: 'DE' }]) {
    const r = normalizeEvent({ ...base, country: bad }, ctx);
    assert.ok(!r.ok);
    assert.deepEqual(
      r.issues.map((i) => [i.field, i.code]),
      [['country', 'TALLY_INVALID_TYPE']],
    );
  }
});

test('country problems are reported beside the other fields', () => {
  const r = normalizeEvent({ type: 'x', country: 'Germany' }, ctx);
  assert.ok(!r.ok);
  assert.deepEqual(r.issues.map((i) => i.field).sort(), ['country', 'user_id']);
});
