import assert from 'node:assert/strict';
import { test } from 'node:test';

// The dashboard's browser module, loaded as is; a plain object stands in for the element.
interface Shown {
  textContent: string;
  dataset: Record<string, string>;
}
type Setter = (el: Shown, v: unknown) => void;
const f = (await import(new URL('../../src/dashboard/assets/format.js', import.meta.url).href)) as {
  setCount: Setter;
  setPercent: Setter;
  setDuration: Setter;
};

function show(set: Setter, v: unknown): [string, string | undefined] {
  const el: Shown = { textContent: '', dataset: { value: 'stale' } };
  set(el, v);
  return [el.textContent, el.dataset.value];
}

test('tiles show the number and keep it raw in data-value; a missing one shows "–"', () => {
  assert.deepEqual(show(f.setCount, 1234), [new Intl.NumberFormat().format(1234), '1234']);
  assert.deepEqual(show(f.setCount, undefined), ['–', undefined], 'an older server without the field');
  assert.deepEqual(show(f.setPercent, null), ['–', undefined], 'no visits: no bounce rate');
  assert.match(show(f.setPercent, 22.2)[0], /^22[.,]2 %$/);
  assert.deepEqual(show(f.setDuration, 42), ['42s', '42']);
  assert.deepEqual(show(f.setDuration, 187), ['3m 07s', '187']);
  assert.deepEqual(show(f.setDuration, 7500), ['2h 05m', '7500']);
  assert.deepEqual(show(f.setDuration, 0), ['0s', '0']);
});
