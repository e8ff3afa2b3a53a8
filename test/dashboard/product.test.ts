import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';

// The dashboard's browser module, loaded as is (it is plain JavaScript with no DOM use).
interface StepForm {
  event_type: string;
  page: string;
}
interface FunnelForm {
  steps: StepForm[];
  window: string;
  count_by: string;
  order: string;
  breakdown: string;
}
interface RetentionForm {
  period: string;
  periods: string;
  cohort_event: string;
  return_event: string;
}
interface View {
  from: number;
  to: number;
  tz: string;
  filters: string[];
}
interface Product {
  funnelBody(form: FunnelForm, view: View): Record<string, unknown>;
  retentionSearch(form: RetentionForm, view: View): string;
  fieldTarget(field: unknown): { step: number } | { name: string } | null;
  periodHeadings(period: string, periods: number): string[];
  shade(p: number | null): number;
}
const p = (await import(new URL('../../src/dashboard/assets/product.js', import.meta.url).href)) as Product;

// Text with the blanks a user leaves around what they type.
const typed = fc.oneof(fc.string(), fc.constantFrom('', ' ', '  signup ', '\t/pricing\n', 'page_view'));
const view = fc.record({
  from: fc.integer({ min: 0, max: 2 ** 45 }),
  to: fc.integer({ min: 0, max: 2 ** 45 }),
  tz: fc.constantFrom('UTC', 'Europe/Berlin', 'America/New_York'),
  filters: fc.array(fc.string(), { maxLength: 4 }),
});

test('the funnel body: each step as typed without blanks, an empty box left out; the view carried', () => {
  fc.assert(
    fc.property(
      fc.record({
        steps: fc.array(fc.record({ event_type: typed, page: typed }), { minLength: 0, maxLength: 12 }),
        window: typed,
        count_by: fc.constantFrom('user', 'visit'),
        order: fc.constantFrom('strict', 'any'),
        breakdown: fc.constantFrom('', 'channel', 'country', 'property:plan'),
      }),
      view,
      (form, v) => {
        const body = p.funnelBody(form, v);
        // Reference, from the contract: a step is {event_type?, page?} of the non-blank boxes,
        // trimmed; from/to/tz from the view; filter only when the view has any; breakdown if chosen.
        const want: Record<string, unknown> = {
          from: String(v.from),
          to: String(v.to),
          tz: v.tz,
          steps: form.steps.map((s) =>
            Object.fromEntries(
              (['event_type', 'page'] as const)
                .filter((k) => s[k].trim().length > 0)
                .map((k) => [k, s[k].trim()]),
            ),
          ),
          window: form.window.trim(),
          count_by: form.count_by,
          order: form.order,
        };
        if (v.filters.length > 0) want.filter = v.filters;
        if (form.breakdown !== '') want.breakdown = form.breakdown;
        assert.deepEqual(body, want);
        // It survives JSON: what the browser sends is what was built.
        assert.deepEqual(JSON.parse(JSON.stringify(body)), want);
      },
    ),
  );
});

test('the retention query: every part named once, the filters repeated in order, blank events left out', () => {
  fc.assert(
    fc.property(
      fc.record({
        period: fc.constantFrom('day', 'week', 'month'),
        periods: typed,
        cohort_event: typed,
        return_event: typed,
      }),
      view,
      (form, v) => {
        const params = new URLSearchParams(p.retentionSearch(form, v));
        assert.equal(params.get('from'), String(v.from));
        assert.equal(params.get('to'), String(v.to));
        assert.equal(params.get('tz'), v.tz);
        assert.equal(params.get('period'), form.period);
        assert.equal(params.get('periods'), form.periods.trim());
        for (const name of ['cohort_event', 'return_event'] as const) {
          const value = form[name].trim();
          assert.deepEqual(params.getAll(name), value === '' ? [] : [value]);
        }
        assert.deepEqual(params.getAll('filter'), v.filters);
        const names = [...new Set(params.keys())].filter((k) => k !== 'filter');
        for (const name of names) assert.equal(params.getAll(name).length, 1, name);
      },
    ),
  );
});

test("an API error's field names the step (in either form the API writes it) or the parameter", () => {
  fc.assert(
    fc.property(
      fc.nat({ max: 99 }),
      fc.nat({ max: 99 }),
      fc.constantFrom('event_type', 'page', 'filter'),
      (i, j, key) => {
        for (const field of [`steps[${i}]`, `steps[${i}].filter[${j}]`, `steps.${i}.${key}`, `steps.${i}`])
          assert.deepEqual(p.fieldTarget(field), { step: i }, field);
      },
    ),
  );
  for (const name of ['window', 'breakdown', 'count_by', 'order', 'periods', 'period', 'from', 'tz'])
    assert.deepEqual(p.fieldTarget(name), { name });
  assert.deepEqual(p.fieldTarget('filter[2]'), { name: 'filter' });
  assert.deepEqual(p.fieldTarget('steps'), { name: 'steps' });
  for (const none of ['', '(request)', undefined, null, 3]) assert.equal(p.fieldTarget(none), null);
});

test('period headings: n columns, numbered from 0, in the period’s word', () => {
  fc.assert(
    fc.property(fc.constantFrom('day', 'week', 'month'), fc.integer({ min: 1, max: 90 }), (period, n) => {
      const word = { day: 'Day', week: 'Week', month: 'Month' }[period];
      assert.deepEqual(
        p.periodHeadings(period, n),
        Array.from({ length: n }, (_, k) => `${word} ${k}`),
      );
    }),
  );
});

test('a cell’s shade: none for null and 0 %, then one step per 20 points up to 5, never falling', () => {
  assert.equal(p.shade(null), 0);
  fc.assert(
    fc.property(
      fc.double({ min: 0, max: 100, noNaN: true }),
      fc.double({ min: 0, max: 100, noNaN: true }),
      (a, b) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        assert.ok(p.shade(lo) <= p.shade(hi), `${lo} → ${p.shade(lo)}, ${hi} → ${p.shade(hi)}`);
        // Reference: the band of 20 points a share falls in, 1-based; 0 % is no share.
        const band = a === 0 ? 0 : a >= 80 ? 5 : Math.floor(a / 20) + 1;
        assert.equal(p.shade(a), band, String(a));
      },
    ),
  );
});
