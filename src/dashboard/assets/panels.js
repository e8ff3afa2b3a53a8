// The breakdown panels (Sources, Pages, Devices, Countries, Event types). Each is a
// <section class="breakdown"> in index.html with a tab per dimension and one table; only the
// selected tab's dimension is fetched. Clicking a row's value asks to filter on it.

import { dimensionLabel, describeFilter, isFilter, NONE, valueLabel } from './filters.js';
import { setCount, setPercent } from './format.js';

/**
 * Wires every panel's tabs; returns the panels, each with `dimension` (the selected tab's) and
 * `load(fetchRows)` which fetches and draws it. `onPick(dimension, value)` runs on a row click;
 * `onTab(panel)` when another tab is chosen.
 */
export function setUpPanels({ onPick, onTab }) {
  return [...document.querySelectorAll('section.breakdown')].map((section) => {
    const tabs = [...section.querySelectorAll('[role="tab"]')];
    const panel = {
      section,
      table: section.querySelector('table'),
      metric: section.dataset.metric ?? 'visitors',
      onPick,
      token: 0,
      // A panel with one dimension has no tabs and names it itself.
      get dimension() {
        const tab = tabs.find((t) => t.getAttribute('aria-selected') === 'true') ?? tabs[0];
        return tab?.dataset.dimension ?? section.dataset.dimension;
      },
      load: (fetchRows) => loadPanel(panel, fetchRows),
    };
    const select = (tab) => {
      for (const t of tabs) {
        t.setAttribute('aria-selected', String(t === tab));
        t.tabIndex = t === tab ? 0 : -1;
      }
      tab.focus();
      onTab(panel);
    };
    for (const tab of tabs) {
      tab.tabIndex = tab.getAttribute('aria-selected') === 'true' ? 0 : -1;
      tab.addEventListener('click', () => select(tab));
      // The tab pattern's keyboard: arrows move between tabs, Tab moves on to the table.
      tab.addEventListener('keydown', (e) => {
        const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
        if (step === undefined) return;
        e.preventDefault();
        select(tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length]);
      });
    }
    return panel;
  });
}

/**
 * Fetches the panel's rows with `fetchRows(dimension)` (resolving to `{results: [{value,
 * <metric>, percentage}]}`) and draws them, unless the panel was asked again meanwhile (another
 * tab, other filters): the newest request wins. A failure is shown in the panel and rethrown.
 */
async function loadPanel(panel, fetchRows) {
  const token = ++panel.token;
  const dimension = panel.dimension;
  panel.section.setAttribute('aria-busy', 'true');
  try {
    const body = await fetchRows(dimension);
    if (token === panel.token) renderRows(panel, dimension, body.results);
  } catch (err) {
    if (token === panel.token) message(panel.table, `Could not load: ${err.message}`);
    throw err;
  } finally {
    if (token === panel.token) panel.section.removeAttribute('aria-busy');
  }
}

function message(table, text) {
  const tr = document.createElement('tr');
  const td = tr.insertCell();
  table.tBodies[0].replaceChildren(tr);
  td.colSpan = table.tHead.rows[0].cells.length;
  td.className = 'empty';
  td.textContent = text;
}

function renderRows(panel, dimension, rows) {
  const { table, metric } = panel;
  table.tHead.rows[0].cells[0].textContent = dimensionLabel(dimension);
  if (rows.length === 0) return message(table, 'Nothing in this range');
  table.tBodies[0].replaceChildren(
    ...rows.map((row) => {
      const tr = document.createElement('tr');
      const label = tr.insertCell();
      label.className = 'label';
      // The bar is drawn through the CSSOM: the page's policy forbids style attributes.
      const bar = document.createElement('span');
      bar.className = 'share';
      bar.style.width = `${Math.max(0, Math.min(100, row.percentage ?? 0))}%`;
      const text = valueLabel(dimension, row.value);
      let name;
      if (row.value === null || row.value === NONE) {
        name = document.createElement('span');
        name.className = 'none';
        name.title = 'No value recorded';
      } else {
        name = document.createElement('button');
        name.type = 'button';
        name.className = 'pick';
        name.dataset.filter = isFilter(dimension, row.value);
        name.title = `Filter: ${describeFilter(name.dataset.filter)}`;
        name.addEventListener('click', () => panel.onPick(dimension, row.value));
      }
      name.textContent = text;
      label.append(bar, name);
      const n = tr.insertCell();
      n.className = 'num';
      setCount(n, row[metric]);
      if (table.tHead.rows[0].cells.length > 2) {
        const p = tr.insertCell();
        p.className = 'num pct';
        setPercent(p, row.percentage);
      }
      return tr;
    }),
  );
}
