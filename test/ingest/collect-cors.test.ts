import assert from 'node:assert/strict';
import { test } from 'node:test';
import { originMatcher } from '../../src/ingest/collect-cors.ts';

test('TALLY_CORS_ORIGINS: a comma-separated list of origins, or *', () => {
  const allowed = originMatcher(' https://shop.example/ ,http://127.0.0.1:3000,, HTTPS://Blog.Example');
  assert.equal(allowed('https://shop.example'), true, 'a trailing slash in the setting is ignored');
  assert.equal(allowed('http://127.0.0.1:3000'), true);
  assert.equal(allowed('https://blog.example'), true, 'origins compare case-insensitively');
  assert.equal(allowed('http://shop.example'), false, 'the scheme is part of the origin');
  assert.equal(allowed('https://shop.example:8443'), false, 'so is the port');
  assert.equal(allowed('https://evil.example'), false);
  assert.equal(originMatcher('*')('https://anything.example'), true);
  assert.equal(originMatcher('')('https://shop.example'), false, 'empty allows no browser origin');
});
