import fc from 'fast-check';

/** Hostile inputs shared by the fuzz suites (fuzz and filter-fuzz .integration.test.ts). */

export const MiB = 1024 * 1024;
export const huge = {
  overBodyLimit: 'x'.repeat(MiB + 10),
  longField: 'u'.repeat(300_000),
  bigProperties: 'p'.repeat(40 * 1024),
};

export const sqlish = fc.constantFrom(
  "'; DROP TABLE tally.events; --",
  "' OR '1'='1",
  '"; SELECT pg_sleep(10); --',
  '\\x00',
  '$1',
  "E'\\\\'",
  '%s%s%s%n',
  '${jndi:ldap://x}',
  '<script>alert(1)</script>',
  '../../etc/passwd',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff\ud800',
  '\u202e',
  '🙂'.repeat(200),
);
export const hostileString = fc.oneof(
  sqlish,
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.string({ maxLength: 300 }),
  fc.constantFrom(huge.longField, huge.bigProperties),
);
// The filter and dimension syntax (issue 20): real and hostile dimensions, every operator and
// none, values with quotes, LIKE wildcards, backslashes, pipes, NUL, and 10 KB.
const hostileValue10k = fc.constantFrom(
  '%'.repeat(10 * 1024),
  "'".repeat(10 * 1024),
  `a${'_'.repeat(10 * 1024)}`,
);
export const dimensionish = fc.oneof(
  fc.constantFrom(
    'page',
    'channel',
    'device',
    'referrer',
    'entry_page',
    'event_type',
    'country',
    'utm_source',
  ),
  hostileString.filter((s) => s.length < 300).map((k) => `property:${k}`),
  fc.constantFrom('property:', 'property:a=b', "page'", 'PAGE', '', 'page;--'),
  hostileString.filter((s) => s.length < 300),
);
const filterValue = fc.oneof(
  sqlish,
  fc.constantFrom('%', '_', '%_%', '\\', '\\|', '\\x', '|', '||', "'", '"', '(none)', '\u0000', 'a\u0000b'),
  fc.string({ maxLength: 40 }),
  hostileValue10k,
);
const filterish = fc
  .tuple(
    dimensionish,
    fc.constantFrom('==', '!=', '~=', '!~', '=', '~', '', '=!'),
    fc.array(filterValue, { minLength: 1, maxLength: 4 }),
  )
  .map(([d, op, values]) => `${d}${op}${values.join('|')}`);
export const filterParams = fc.oneof(
  { weight: 3, arbitrary: fc.array(filterish, { maxLength: 4 }) },
  // 100 filters (the limit) and 101 (one too many).
  fc.constantFrom(100, 101).map((n) => Array.from({ length: n }, (_, i) => `page!=/p${i}`)),
);
