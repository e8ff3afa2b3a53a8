// What the funnel and retention views send, and how they read the API's answers and errors
// (issue 21). Pure functions: unit-tested under Node. The API checks every request itself; the
// views send what the user typed and show its coded 400s, so these build requests, not verdicts.

export const MIN_STEPS = 2;
export const MAX_STEPS = 10;

/**
 * The POST /v1/stats/funnel body for the form's values under the page's view ({from, to, tz,
 * filters}). An empty box is left out, not sent as "": a step with neither box filled goes out
 * as `{}`, which the API refuses naming the step.
 */
export function funnelBody(form, view) {
  const steps = form.steps.map((s) => {
    const step = {};
    const type = s.event_type.trim();
    const page = s.page.trim();
    if (type !== '') step.event_type = type;
    if (page !== '') step.page = page;
    return step;
  });
  return {
    from: String(view.from),
    to: String(view.to),
    tz: view.tz,
    ...(view.filters.length > 0 ? { filter: view.filters } : {}),
    steps,
    window: form.window.trim(),
    count_by: form.count_by,
    order: form.order,
    ...(form.breakdown ? { breakdown: form.breakdown } : {}),
  };
}

/** The GET /v1/stats/retention query string (without `?`) for the form's values under the view. */
export function retentionSearch(form, view) {
  const params = new URLSearchParams({
    from: String(view.from),
    to: String(view.to),
    tz: view.tz,
    period: form.period,
    periods: form.periods.trim(),
  });
  for (const [name, value] of [
    ['cohort_event', form.cohort_event],
    ['return_event', form.return_event],
  ]) {
    if (value.trim() !== '') params.set(name, value.trim());
  }
  for (const f of view.filters) params.append('filter', f);
  return params.toString();
}

/**
 * Which part of the form an API error's `field` names: `{step: i}` (0-based) for `steps[i]`,
 * `steps[i].filter[j]` (the service's form) or `steps.i.page` (the schema validator's), `{name}`
 * for a top-level parameter (`window`, `periods`, …), null for none (`(request)`).
 */
export function fieldTarget(field) {
  if (typeof field !== 'string' || field === '' || field === '(request)') return null;
  const step = /^steps(?:\[(\d+)\]|\.(\d+))/.exec(field);
  if (step) return { step: Number(step[1] ?? step[2]) };
  const name = /^[a-z_]+/.exec(field);
  return name ? { name: name[0] } : null;
}

/** The cohort table's column headings: "Week 0", "Week 1", … */
export function periodHeadings(period, periods) {
  const word = { day: 'Day', week: 'Week', month: 'Month' }[period] ?? period;
  return Array.from({ length: periods }, (_, k) => `${word} ${k}`);
}

/**
 * A cell's shade, 0..5 (none to darkest), from its percentage: 0 for none and for null (period
 * not over yet, or an empty cohort), then one step per 20 points, so that 5 % still shows.
 */
export function shade(p) {
  if (typeof p !== 'number' || !(p > 0)) return 0;
  return Math.min(5, 1 + Math.floor(Math.min(p, 100) / 20));
}
