// The funnel view (issue 21): 2–10 steps, each an event type and/or a page, asked of
// POST /v1/stats/funnel under the page's range, time zone and filters; per step the count,
// the conversion from the first and from the previous step, and the median time between, as bars.

import { dimensionLabel, DIMENSIONS, valueLabel } from './filters.js';
import { setCount, setDuration, setPercent } from './format.js';
import { funnelBody, MAX_STEPS, MIN_STEPS } from './product.js';
import { coverNote, productView, tableMessage } from './product-view.js';

const $ = (id) => document.getElementById(id);

/**
 * Wires the funnel form. `api(path, init)` asks the API; `view()` is the page's {from, to, tz,
 * filters} at the time of asking. Returns {reload}, which asks again under the page's current
 * view if the funnel has been shown (the range, time zone or filters changed).
 */
export function setUpFunnel({ api, view }) {
  const section = $('funnel');
  const form = $('funnel-form');
  const list = $('funnel-steps');
  const table = $('funnel-table');
  const groups = $('funnel-groups');
  const inputs = {
    window: $('funnel-window'),
    count_by: $('funnel-count-by'),
    order: $('funnel-order'),
    breakdown: $('funnel-breakdown'),
  };
  for (const d of DIMENSIONS) inputs.breakdown.add(new Option(dimensionLabel(d), d));

  const run = productView({
    section,
    error: $('funnel-error'),
    inputsFor: (target) =>
      'step' in target
        ? [...(list.children[target.step]?.querySelectorAll('input') ?? [])]
        : [inputs[target.name] ?? null].filter(Boolean),
  });
  let shown = false;

  function addStep() {
    const li = $('funnel-step-template').content.firstElementChild.cloneNode(true);
    li.querySelector('.remove').addEventListener('click', () => {
      li.remove();
      renumber();
    });
    list.append(li);
    renumber();
    return li;
  }

  /** Steps are numbered by position; labels and limits follow every add and remove. */
  function renumber() {
    const items = [...list.children];
    items.forEach((li, i) => {
      const n = i + 1;
      li.querySelector('legend').textContent = `Step ${n}`;
      const remove = li.querySelector('.remove');
      remove.setAttribute('aria-label', `Remove step ${n}`);
      remove.disabled = items.length <= MIN_STEPS;
    });
    $('funnel-add-step').disabled = items.length >= MAX_STEPS;
  }

  function values() {
    return {
      steps: [...list.children].map((li) => ({
        event_type: li.querySelector('input[name="event_type"]').value,
        page: li.querySelector('input[name="page"]').value,
      })),
      window: inputs.window.value,
      count_by: inputs.count_by.value,
      order: inputs.order.value,
      breakdown: inputs.breakdown.value,
    };
  }

  function ask() {
    shown = true;
    const v = view();
    const body = funnelBody(values(), v);
    return run(
      () =>
        api('/v1/stats/funnel', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        }),
      (answer) => render(answer, v.tz),
    );
  }

  function render(answer, tz) {
    coverNote($('funnel-note'), answer, tz);
    drawSteps(table, answer.steps);
    drawGroups(groups, answer);
  }

  for (let i = 0; i < MIN_STEPS; i++) addStep();
  $('funnel-add-step').addEventListener('click', () => addStep().querySelector('input').focus());
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void ask();
  });
  return {
    reload() {
      if (shown) void ask();
    },
  };
}

function drawSteps(table, steps) {
  table.tBodies[0].replaceChildren(
    ...steps.map((s) => {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.scope = 'row';
      th.className = 'label';
      // The bar is the share of the first step; drawn through the CSSOM (no style attributes).
      const bar = document.createElement('span');
      bar.className = 'share';
      bar.style.width = `${Math.max(0, Math.min(100, s.conversion_from_first ?? 0))}%`;
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = `${s.step}. ${s.label}`;
      th.append(bar, name);
      tr.append(th);
      const cell = (className, set, value) => {
        const td = tr.insertCell();
        td.className = className;
        set(td, value);
      };
      cell('num count', setCount, s.count);
      cell('num pct from-first', setPercent, s.conversion_from_first);
      cell('num pct from-previous', setPercent, s.conversion_from_previous);
      cell('num median', setDuration, s.median_seconds_from_previous);
      return tr;
    }),
  );
}

/** With a breakdown: a row per value, a column per step (its count, and its share of the first). */
function drawGroups(table, answer) {
  table.hidden = answer.groups === undefined;
  if (answer.groups === undefined) return;
  const head = document.createElement('tr');
  const corner = document.createElement('th');
  corner.scope = 'col';
  corner.textContent = dimensionLabel(answer.breakdown);
  head.append(corner);
  for (const s of answer.steps) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.className = 'num';
    th.textContent = `Step ${s.step}`;
    th.title = s.label;
    head.append(th);
  }
  table.tHead.replaceChildren(head);
  table.caption.textContent = answer.has_more
    ? `By ${dimensionLabel(answer.breakdown).toLowerCase()} (the first ${answer.groups.length} values)`
    : `By ${dimensionLabel(answer.breakdown).toLowerCase()}`;
  if (answer.groups.length === 0) return tableMessage(table, 'Nothing in this range');
  table.tBodies[0].replaceChildren(
    ...answer.groups.map((g) => {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = valueLabel(answer.breakdown, g.value);
      tr.append(th);
      for (const s of g.steps) {
        const td = tr.insertCell();
        td.className = 'num';
        setCount(td, s.count);
        if (s.step > 1 && typeof s.conversion_from_first === 'number')
          td.title = `${s.conversion_from_first} % of step 1`;
      }
      return tr;
    }),
  );
}
