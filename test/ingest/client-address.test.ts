import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientAddress, isPublicAddress, parseTrustedProxies } from '../../src/ingest/client-address.ts';

test('trusted proxies: addresses and CIDR ranges, IPv4 and IPv6', () => {
  const trusted = parseTrustedProxies(' 10.0.0.0/8, 192.0.2.7,2001:db8::/32 ,, ::1');
  assert.equal(trusted.empty, false);
  for (const a of ['10.1.2.3', '192.0.2.7', '2001:db8::5', '::1']) assert.ok(trusted.has(a), a);
  for (const a of ['11.0.0.1', '192.0.2.8', '2001:db9::1', 'not-an-ip']) assert.ok(!trusted.has(a), a);
  assert.equal(parseTrustedProxies('').empty, true);
  assert.equal(parseTrustedProxies(' , ').empty, true);
});

test('a trusted proxy entry that is not an address or range is refused, naming it', () => {
  assert.throws(() => parseTrustedProxies('10.0.0.1, proxy.local'), /"proxy.local" is not an IP address/);
  assert.throws(() => parseTrustedProxies('10.0.0.0/33'), /"10.0.0.0\/33" has a prefix length/);
  assert.throws(() => parseTrustedProxies('::/129'), /prefix length that is not 0..128/);
  assert.throws(() => parseTrustedProxies('10.0.0.0/x'), /prefix length/);
  assert.throws(() => parseTrustedProxies('300.1.1.1'), /not an IP address/);
});

test('without trusted proxies the socket peer is the client, whatever X-Forwarded-For says', () => {
  const none = parseTrustedProxies('');
  assert.equal(clientAddress('203.0.113.9', '8.8.8.8', none), '203.0.113.9');
  assert.equal(clientAddress('::ffff:203.0.113.9', undefined, none), '203.0.113.9');
  assert.equal(clientAddress(undefined, '8.8.8.8', none), undefined);
});

test('X-Forwarded-For is believed only from a trusted peer: the right-most untrusted entry', () => {
  const trusted = parseTrustedProxies('10.0.0.0/8');
  // Untrusted peer: its header is ignored.
  assert.equal(clientAddress('203.0.113.9', '8.8.8.8', trusted), '203.0.113.9');
  // Trusted peer: the entry it appended.
  assert.equal(clientAddress('10.0.0.2', '8.8.8.8', trusted), '8.8.8.8');
  assert.equal(clientAddress('::ffff:10.0.0.2', '8.8.8.8', trusted), '8.8.8.8');
  // What the client claimed (left) is skipped; trusted hops (right) are walked past.
  assert.equal(clientAddress('10.0.0.2', '1.1.1.1, 8.8.8.8, 10.0.0.3', trusted), '8.8.8.8');
  // Several header lines are one list.
  assert.equal(clientAddress('10.0.0.2', ['1.1.1.1', '8.8.8.8 , 10.9.9.9'], trusted), '8.8.8.8');
  // Ports and brackets are dropped.
  assert.equal(clientAddress('10.0.0.2', '8.8.8.8:4711', trusted), '8.8.8.8');
  assert.equal(clientAddress('10.0.0.2', '[2001:4860:4860::8888]:443', trusted), '2001:4860:4860::8888');
  // All trusted: the left-most; garbage where the client should be: unknown.
  assert.equal(clientAddress('10.0.0.2', '10.0.0.7, 10.0.0.8', trusted), '10.0.0.7');
  assert.equal(clientAddress('10.0.0.2', '8.8.8.8, unknown', trusted), undefined);
  // No header: the proxy itself.
  assert.equal(clientAddress('10.0.0.2', undefined, trusted), '10.0.0.2');
});

test('private, loopback and link-local addresses have no country', () => {
  for (const a of [
    '10.1.1.1',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.0.1',
    '127.0.0.1',
    '169.254.1.1',
    '100.64.0.1',
    '0.1.2.3',
    '::1',
    '::',
    'fd00::1',
    'fe80::1',
  ])
    assert.equal(isPublicAddress(a), false, a);
  for (const a of ['8.8.8.8', '172.32.0.1', '2001:4860:4860::8888', '81.2.69.160'])
    assert.equal(isPublicAddress(a), true, a);
  assert.equal(isPublicAddress('nonsense'), false);
});
