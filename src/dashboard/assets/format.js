// Number formats shared by the dashboard's modules. Every number shown also lands in the
// element's data-value, raw, so that tests and scripts read numbers rather than localized text.

export const count = new Intl.NumberFormat();
const oneDecimal = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });

function show(el, text, value) {
  el.textContent = text;
  if (value === null || value === undefined) delete el.dataset.value;
  else el.dataset.value = String(value);
}

/** A count; "–" when the server did not send it (an older server, or nothing to measure). */
export function setCount(el, n) {
  show(el, typeof n === 'number' ? count.format(n) : '–', n);
}

/** A percentage given as 0..100. */
export function setPercent(el, p) {
  show(el, typeof p === 'number' ? `${oneDecimal.format(p)} %` : '–', p);
}

/** A duration given in seconds, as "42s", "3m 07s" or "2h 05m" (short enough for a tile). */
export function duration(sec) {
  const s = Math.round(sec);
  const pad = (n) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${pad(Math.floor(s / 60) % 60)}m`;
}

export function setDuration(el, sec) {
  show(el, typeof sec === 'number' ? duration(sec) : '–', sec);
}
