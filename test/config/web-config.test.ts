import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';

test('web analytics defaults: 30-minute visits, no trusted proxies, the packaged country database', () => {
  const { raw } = loadConfig({});
  assert.equal(raw.TALLY_SESSION_TIMEOUT_MIN, 30);
  assert.equal(raw.TALLY_TRUSTED_PROXIES, '');
  assert.equal(raw.TALLY_GEOIP_DATABASE, undefined);
});

test('the web analytics settings are read', () => {
  const { raw } = loadConfig({
    TALLY_SESSION_TIMEOUT_MIN: '1440',
    TALLY_TRUSTED_PROXIES: '10.0.0.0/8, ::1',
    TALLY_GEOIP_DATABASE: 'off',
  });
  assert.equal(raw.TALLY_SESSION_TIMEOUT_MIN, 1440);
  assert.equal(raw.TALLY_TRUSTED_PROXIES, '10.0.0.0/8, ::1');
  assert.equal(raw.TALLY_GEOIP_DATABASE, 'off');
});

test('a bad session timeout or trusted proxy list fails at start, naming the variable', () => {
  for (const [name, value] of [
    ['TALLY_SESSION_TIMEOUT_MIN', '0'],
    ['TALLY_SESSION_TIMEOUT_MIN', '1441'],
    ['TALLY_TRUSTED_PROXIES', '10.0.0.1, proxy.internal'],
    ['TALLY_TRUSTED_PROXIES', '10.0.0.0/40'],
  ]) {
    assert.throws(
      () => loadConfig({ [name]: value }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'TALLY_CONFIG_INVALID');
        assert.match(err.message, new RegExp(`${name}: `));
        return true;
      },
      `${name}=${value}`,
    );
  }
});
