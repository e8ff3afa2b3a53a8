import assert from 'node:assert/strict';
import { test } from 'node:test';

// The dashboard's browser module, loaded as is (it is plain JavaScript with no DOM use).
interface Filters {
  escapeValue(v: string): string;
  isFilter(dimension: string, value: string): string;
  parseFilter(text: string): { dimension: string; op: string; values: string[] } | null;
  withFilter(filters: string[], dimension: string, value: string): string[];
  describeFilter(text: string): string;
  countryLabel(code: string): string;
  readView(search: string): { filters: string[]; range: string };
  viewSearch(view: { filters: string[]; range: string }): string;
  filterParams(filters: string[]): string;
}
const f = (await import(new URL('../../src/dashboard/assets/filters.js', import.meta.url).href)) as Filters;

test('a clicked value becomes `<dimension>==<value>` with `|` and `\\` escaped, and parses back', () => {
  assert.equal(f.isFilter('device', 'mobile'), 'device==mobile');
  assert.equal(f.isFilter('page', '/a|b\\c'), 'page==/a\\|b\\\\c');
  for (const value of ['/a|b\\c', '\\', '|', 'x==y', 'a!=b~=c', '', 'ü 🇩🇪 %_\'"']) {
    assert.deepEqual(f.parseFilter(f.isFilter('utm_campaign', value)), {
      dimension: 'utm_campaign',
      op: '==',
      values: [value],
    });
  }
  assert.deepEqual(f.parseFilter('channel!=Email|Direct'), {
    dimension: 'channel',
    op: '!=',
    values: ['Email', 'Direct'],
  });
  assert.deepEqual(f.parseFilter('property:plan~=pro'), {
    dimension: 'property:plan',
    op: '~=',
    values: ['pro'],
  });
  assert.equal(f.parseFilter('no operator'), null);
  assert.equal(f.parseFilter('==x'), null, 'no dimension');
});

test('clicking replaces a filter on the same dimension and keeps the others in order', () => {
  const start = ['channel==Email', 'device!=desktop', 'page~=/blog'];
  assert.deepEqual(f.withFilter(start, 'device', 'mobile'), [
    'channel==Email',
    'page~=/blog',
    'device==mobile',
  ]);
  assert.deepEqual(f.withFilter([], 'country', 'DE'), ['country==DE']);
});

test('chips read as sentences; countries get a flag and a name', () => {
  assert.equal(f.describeFilter('device==mobile'), 'Device is mobile');
  assert.equal(f.describeFilter('channel==Email|Referral'), 'Channel is Email or Referral');
  assert.equal(f.describeFilter('utm_source!~news'), 'UTM source does not contain news');
  assert.equal(f.describeFilter('property:plan==pro'), 'Property plan is pro');
  assert.equal(f.describeFilter('garbage'), 'garbage');
  assert.match(f.countryLabel('DE'), /^🇩🇪 \S/);
  assert.equal(f.describeFilter('country==FR').startsWith('Country is 🇫🇷 '), true);
  assert.equal(f.countryLabel('not a code'), 'not a code');
  assert.equal(f.countryLabel('XX'), 'XX', 'no flag for a code that names no region');
});

test('the URL holds the view: filters in order and the range; unknown ranges fall back', () => {
  const view = { filters: ['channel==Email', 'page==/a\\|b&c=d'], range: '7d' };
  const search = f.viewSearch(view);
  assert.match(search, /^\?filter=channel%3D%3DEmail&filter=/);
  assert.deepEqual(f.readView(search), view);
  assert.deepEqual(f.readView('?filter=device%3D%3Dmobile'), { filters: ['device==mobile'], range: '24h' });
  assert.deepEqual(f.readView('?range=1y&filter='), { filters: [], range: '24h' });
  // Requests carry the filters encoded the same way the API decodes them.
  const params = new URLSearchParams(f.filterParams(view.filters).slice(1));
  assert.deepEqual(params.getAll('filter'), view.filters);
});
