// The dashboard's filters use the query API's own syntax (`<dimension><op><value>[|<value>…]`,
// repeated `filter` parameters combined with AND), so the page's URL passes straight through to
// every request and a shared URL opens the same view. Pure functions: unit-tested under Node.

export const RANGES = ['1h', '24h', '7d', '30d'];
export const DEFAULT_RANGE = '24h';

const OPS = ['==', '!=', '~=', '!~'];
const OP_WORDS = { '==': 'is', '!=': 'is not', '~=': 'contains', '!~': 'does not contain' };

const DIMENSION_LABELS = {
  page: 'Page',
  hostname: 'Hostname',
  entry_page: 'Entry page',
  exit_page: 'Exit page',
  referrer: 'Referrer',
  channel: 'Channel',
  utm_source: 'UTM source',
  utm_medium: 'UTM medium',
  utm_campaign: 'UTM campaign',
  utm_term: 'UTM term',
  utm_content: 'UTM content',
  browser: 'Browser',
  os: 'OS',
  device: 'Device',
  country: 'Country',
  event_type: 'Event type',
};

/** The dimensions one can filter or break down by (besides `property:<key>`). */
export const DIMENSIONS = Object.keys(DIMENSION_LABELS);

/** The API shows a missing dimension value as this; it is not a value one can filter on. */
export const NONE = '(none)';

/** `\` and `|` are the syntax's own characters inside a value. */
export function escapeValue(value) {
  return value.replace(/[\\|]/g, '\\$&');
}

/** The filter "<dimension> is <value>" that clicking a row adds. */
export function isFilter(dimension, value) {
  return `${dimension}==${escapeValue(value)}`;
}

/**
 * Splits a filter into {dimension, op, values} for display; null when it does not parse (the
 * server then answers 400 naming it, and the chip says so). The dimension ends at the first
 * operator: dimension names never contain one.
 */
export function parseFilter(text) {
  let at = -1;
  for (const op of OPS) {
    const i = text.indexOf(op);
    if (i > 0 && (at < 0 || i < at)) at = i;
  }
  if (at < 0) return null;
  const values = [];
  let current = '';
  for (let i = at + 2; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length) current += text[++i];
    else if (c === '|') {
      values.push(current);
      current = '';
    } else current += c;
  }
  values.push(current);
  return { dimension: text.slice(0, at), op: text.slice(at, at + 2), values };
}

/** The dimension of a filter as written (for replacing a filter on the same dimension). */
export function dimensionOf(text) {
  return parseFilter(text)?.dimension ?? null;
}

/** Filters after clicking "<dimension> is <value>": it replaces any filter on that dimension. */
export function withFilter(filters, dimension, value) {
  return [...filters.filter((f) => dimensionOf(f) !== dimension), isFilter(dimension, value)];
}

export function dimensionLabel(dimension) {
  if (dimension.startsWith('property:')) return `Property ${dimension.slice(9)}`;
  return DIMENSION_LABELS[dimension] ?? dimension;
}

const regionNames = (() => {
  try {
    return new Intl.DisplayNames(undefined, { type: 'region' });
  } catch {
    return null;
  }
})();

/** "🇩🇪 Germany" for "DE": the flag from the regional-indicator letters, the name from Intl. */
export function countryLabel(code) {
  if (!/^[A-Z]{2}$/.test(code)) return code;
  const flag = String.fromCodePoint(...[...code].map((c) => 0x1f1e6 + c.charCodeAt(0) - 65));
  let name = code;
  try {
    name = regionNames?.of(code) ?? code;
  } catch {
    // Not a region code Intl knows: the code itself is the best name there is.
  }
  // Without a name the code is no real region (e.g. XX), and neither would its flag be.
  return name === code ? code : `${flag} ${name}`;
}

/** How a value of `dimension` reads in the page. */
export function valueLabel(dimension, value) {
  if (value === null || value === NONE) return '(none)';
  return dimension === 'country' ? countryLabel(value) : value;
}

/** "Device is mobile", "Channel is Email or Referral"; the raw text when it does not parse. */
export function describeFilter(text) {
  const f = parseFilter(text);
  if (f === null) return text;
  const values = f.values.map((v) => valueLabel(f.dimension, v));
  return `${dimensionLabel(f.dimension)} ${OP_WORDS[f.op]} ${values.join(f.op[0] === '!' ? ' nor ' : ' or ')}`;
}

/** The view a URL's query string names: its filters (in order) and range. */
export function readView(search) {
  const params = new URLSearchParams(search);
  const range = params.get('range');
  return {
    filters: params.getAll('filter').filter((f) => f !== ''),
    range: RANGES.includes(range) ? range : DEFAULT_RANGE,
  };
}

/** The query string for a view: `filter=…&filter=…&range=…`. */
export function viewSearch(view) {
  const params = new URLSearchParams();
  for (const f of view.filters) params.append('filter', f);
  params.set('range', view.range);
  return `?${params}`;
}

/** The `&filter=…` part every stats request carries. */
export function filterParams(filters) {
  return filters.map((f) => `&filter=${encodeURIComponent(f)}`).join('');
}
