import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openCountryLookup, packagedDatabasePath } from '../../src/ingest/geo.ts';

test('the packaged database knows public addresses, IPv4 and IPv6', async () => {
  const geo = await openCountryLookup(undefined);
  assert.ok(geo);
  assert.equal(geo.country('8.8.8.8'), 'US');
  assert.equal(geo.country('81.2.69.160'), 'GB');
  assert.equal(geo.country('2001:4860:4860::8888'), 'US');
});

test('private and loopback addresses, and what is not an address, have no country', async () => {
  const geo = await openCountryLookup(packagedDatabasePath());
  assert.ok(geo);
  for (const a of ['127.0.0.1', '10.0.0.1', '192.168.1.1', '::1', 'fd12::1', 'not-an-ip', ''])
    assert.equal(geo.country(a), null, a);
});

test('TALLY_GEOIP_DATABASE=off: no lookups', async () => {
  assert.equal(await openCountryLookup('off'), undefined);
});

test('a database that cannot be opened fails, naming TALLY_GEOIP_DATABASE', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tally-geo-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const notMmdb = join(dir, 'x.mmdb');
  await writeFile(notMmdb, 'hello');
  for (const path of [join(dir, 'missing.mmdb'), notMmdb]) {
    await assert.rejects(openCountryLookup(path), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'TALLY_CONFIG_INVALID');
      assert.match(err.message, /^TALLY_GEOIP_DATABASE: cannot open/);
      return true;
    });
  }
});
