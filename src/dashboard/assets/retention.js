// The retention view (issue 21): cohorts by first seen (or by a first event) per day, week or
// month in the page's time zone, from GET /v1/stats/retention under the page's range and
// filters; a row per cohort, a column per period after it, each cell the share that came back.

import { setCount, setPercent } from './format.js';
import { periodHeadings, retentionSearch, shade } from './product.js';
import { coverNote, productView, tableMessage } from './product-view.js';

const $ = (id) => document.getElementById(id);

/**
 * Wires the retention form; asks once the view is first opened (its <details>), since the
 * defaults need no input. `api` and `view` as for the funnel. Returns {reload}, which asks again
 * under the page's current view if the table has been shown.
 */
export function setUpRetention({ api, view }) {
  const section = $('retention');
  const table = $('retention-table');
  const inputs = {
    period: $('retention-period'),
    periods: $('retention-periods'),
    cohort_event: $('retention-cohort-event'),
    return_event: $('retention-return-event'),
  };
  const run = productView({
    section,
    error: $('retention-error'),
    inputsFor: (target) => [inputs[target.name] ?? null].filter(Boolean),
  });
  let shown = false;

  function ask() {
    shown = true;
    const v = view();
    const form = Object.fromEntries(Object.entries(inputs).map(([name, input]) => [name, input.value]));
    return run(
      () => api(`/v1/stats/retention?${retentionSearch(form, v)}`),
      (answer) => {
        coverNote($('retention-note'), answer, v.tz);
        draw(table, answer, form);
      },
    );
  }

  $('retention-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void ask();
  });
  const details = section.querySelector('details');
  details.addEventListener('toggle', () => {
    if (details.open && !shown) void ask();
  });
  return {
    reload() {
      if (shown) void ask();
    },
  };
}

function draw(table, answer, form) {
  const head = document.createElement('tr');
  const th = (text, className = '') => {
    const cell = document.createElement('th');
    cell.scope = 'col';
    cell.className = className;
    cell.textContent = text;
    return cell;
  };
  head.append(
    th('Cohort'),
    th('Users', 'num'),
    ...periodHeadings(answer.period, answer.periods).map((h) => th(h, 'num pct')),
  );
  table.tHead.replaceChildren(head);
  const who = form.cohort_event.trim() ? `users first doing ${form.cohort_event.trim()}` : 'new users';
  const back = form.return_event.trim() ? `doing ${form.return_event.trim()}` : 'back';
  table.caption.textContent = `Share of each ${answer.period}'s ${who} ${back} in the ${answer.period}s after (${answer.tz})`;
  if (answer.cohorts.length === 0) return tableMessage(table, 'Nothing in this range');
  table.tBodies[0].replaceChildren(
    ...answer.cohorts.map((c) => {
      const tr = document.createElement('tr');
      const rowHead = document.createElement('th');
      rowHead.scope = 'row';
      const time = document.createElement('time');
      time.dateTime = c.date;
      time.textContent = c.date;
      rowHead.append(time);
      tr.append(rowHead);
      const size = tr.insertCell();
      size.className = 'num users';
      setCount(size, c.users);
      c.retention.forEach((p, k) => {
        const td = tr.insertCell();
        td.className = 'num pct cell';
        td.dataset.shade = String(shade(p));
        setPercent(td, p);
        const back = c.returned[k];
        // null: the period starts after the range's end (not over yet); an empty cohort has no share.
        if (back === null) td.title = 'Not over yet';
        else if (typeof p === 'number') td.title = `${back} of ${c.users}`;
      });
      return tr;
    }),
  );
}
