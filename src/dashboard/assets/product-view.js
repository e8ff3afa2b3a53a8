// What the funnel and retention views share: a question asked on demand (not on every live
// update, since one can read a week of raw events), the newest answer winning, and the API's
// refusal shown next to the form with the fields it names marked.

import { fieldTarget } from './product.js';

/**
 * Wires one view: `section` (its <section>, whose data-state says 'loading', 'done' or 'error'
 * for tests and scripts), `error` (the element the API's message goes to) and `inputsFor(target)`
 * (the inputs an error's field names, see fieldTarget). Returns `run(ask, render)`, which asks,
 * draws the answer, or shows the error; a run overtaken by a newer one is dropped.
 */
export function productView({ section, error, inputsFor }) {
  let token = 0;
  let marked = [];

  function clear() {
    error.hidden = true;
    error.textContent = '';
    for (const input of marked) {
      input.removeAttribute('aria-invalid');
      input.removeAttribute('aria-describedby');
    }
    marked = [];
  }

  function show(err) {
    error.textContent = err.message;
    error.hidden = false;
    const fields = Array.isArray(err.errors) ? err.errors : [];
    for (const e of fields) {
      const target = fieldTarget(e.field);
      for (const input of target ? inputsFor(target) : []) {
        input.setAttribute('aria-invalid', 'true');
        // A screen reader on the marked box reads why.
        input.setAttribute('aria-describedby', error.id);
        marked.push(input);
      }
    }
  }

  return async function run(ask, render) {
    const mine = ++token;
    section.dataset.state = 'loading';
    section.setAttribute('aria-busy', 'true');
    try {
      const body = await ask();
      if (mine !== token) return;
      clear();
      render(body);
      section.dataset.state = 'done';
    } catch (err) {
      if (mine !== token) return;
      clear();
      show(err);
      section.dataset.state = 'error';
    } finally {
      if (mine === token) section.removeAttribute('aria-busy');
    }
  };
}

/** A one-cell row spanning `table`, saying `text` (nothing yet, nothing found). */
export function tableMessage(table, text) {
  const tr = document.createElement('tr');
  const td = tr.insertCell();
  td.colSpan = table.tHead.rows[0].cells.length;
  td.className = 'empty';
  td.textContent = text;
  table.tBodies[0].replaceChildren(tr);
}

/** "Raw events are kept from …": shown when the answer covers less of the range than asked. */
export function coverNote(note, answer, tz) {
  const short = Date.parse(answer.covers.from) > Date.parse(answer.from);
  note.hidden = !short;
  if (short) {
    const when = new Date(answer.covers.from).toLocaleString(undefined, { timeZone: tz });
    note.textContent = `The raw events are kept from ${when} on: earlier parts of the range are not counted.`;
  }
}
