import { TallyError } from '../errors/tally-error.ts';

/**
 * The `filter` syntax shared by every stats endpoint, gRPC and the dashboard URL (issue 20):
 * `<dimension><op><value>[|<value>…]`. Parsed here into a typed value; the SQL is built from
 * it in src/store/analytics-store.ts, where dimension names map to columns through a whitelist
 * and every value travels as a bind parameter.
 */

/** Dimensions of the event itself: they select events. */
export const EVENT_DIMENSIONS = [
  'page',
  'hostname',
  'event_type',
  'browser',
  'os',
  'device',
  'country',
] as const;
/** Dimensions of the visit (its first event, or its entry/exit page): they select events by their visit. */
export const VISIT_DIMENSIONS = [
  'entry_page',
  'exit_page',
  'referrer',
  'channel',
  'utm_source',
  'utm_medium',
  'utm_campaign',
  'utm_term',
  'utm_content',
] as const;

export type EventDimension = (typeof EVENT_DIMENSIONS)[number];
export type VisitDimension = (typeof VISIT_DIMENSIONS)[number];

/** A dimension: a named column, or a custom property of the event. */
export type Dimension =
  | { kind: 'event'; name: EventDimension }
  | { kind: 'visit'; name: VisitDimension }
  | { kind: 'property'; key: string };

export type FilterOp = 'is' | 'is_not' | 'contains' | 'not_contains';

export interface Filter {
  dimension: Dimension;
  op: FilterOp;
  /** The alternatives, unescaped. For `is`/`is_not`, NONE_VALUE stands for "no value" (NULL). */
  values: string[];
}

export const OPS: Record<string, FilterOp> = {
  '==': 'is',
  '!=': 'is_not',
  '~=': 'contains',
  '!~': 'not_contains',
};
const OP_TEXT: Record<FilterOp, string> = { is: '==', is_not: '!=', contains: '~=', not_contains: '!~' };

/** How a missing value shows in a breakdown, and how `==`/`!=` name it. */
export const NONE_VALUE = '(none)';

/** Limits, so that a hostile query costs a bounded amount (README "Filters"). */
export const FILTER_LIMITS = {
  filters: 100,
  alternatives: 100,
  valueChars: 2048,
  propertyKeyChars: 128,
} as const;

const DIMENSION_NAMES = new Set<string>([...EVENT_DIMENSIONS, ...VISIT_DIMENSIONS]);
const VISIT_SET = new Set<string>(VISIT_DIMENSIONS);
const PROPERTY_PREFIX = 'property:';

export function dimensionName(d: Dimension): string {
  return d.kind === 'property' ? PROPERTY_PREFIX + d.key : d.name;
}

/**
 * Reads a dimension name (`page`, `property:plan`, …); undefined when unknown. Property keys are
 * 1–128 characters without `=`, `!`, `~` (they would be read as an operator) or NUL.
 */
export function parseDimension(text: string): Dimension | undefined {
  if (text.startsWith(PROPERTY_PREFIX)) {
    const key = text.slice(PROPERTY_PREFIX.length);
    if (key.length === 0 || key.length > FILTER_LIMITS.propertyKeyChars) return undefined;
    if (/[=!~\0]/.test(key) || !key.isWellFormed()) return undefined;
    return { kind: 'property', key };
  }
  if (!DIMENSION_NAMES.has(text)) return undefined;
  return VISIT_SET.has(text)
    ? { kind: 'visit', name: text as VisitDimension }
    : { kind: 'event', name: text as EventDimension };
}

export const DIMENSION_HELP = `one of ${[...EVENT_DIMENSIONS, ...VISIT_DIMENSIONS].join(', ')}, or property:<key>`;

/** Parses the `filter` values of a request, in order; throws TALLY_INVALID_QUERY naming `filter[i]`. */
export function parseFilters(texts: readonly string[] | undefined): Filter[] {
  if (texts === undefined) return [];
  if (texts.length > FILTER_LIMITS.filters) {
    throw invalid('filter', `at most ${FILTER_LIMITS.filters} filters (got ${texts.length})`);
  }
  return texts.map((text, i) => parseFilter(text, i));
}

export function parseFilter(text: string, index: number): Filter {
  const field = `filter[${index}]`;
  const fail = (message: string) => invalid(field, message);
  if (text.includes('\0')) throw fail('a filter cannot contain a NUL character');
  if (!text.isWellFormed()) throw fail('a filter cannot contain an unpaired surrogate (invalid UTF-16)');
  const m = /==|!=|~=|!~/.exec(text);
  if (m === null) {
    throw fail(`expected <dimension><op><value>, op one of == != ~= !~ (got ${preview(text)})`);
  }
  const name = text.slice(0, m.index);
  const dimension = parseDimension(name);
  if (dimension === undefined) {
    throw fail(
      name === ''
        ? 'the dimension is missing before the operator'
        : `unknown dimension ${preview(name)}: ${DIMENSION_HELP}`,
    );
  }
  const op = OPS[m[0]];
  const values = splitValues(text.slice(m.index + 2), fail);
  return { dimension, op, values };
}

/** Splits at unescaped `|`, unescaping `\|` and `\\`; any other backslash is an error. */
function splitValues(text: string, fail: (message: string) => TallyError): string[] {
  const values: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') {
      const next = text[i + 1];
      if (next !== '|' && next !== '\\') {
        throw fail(
          `bad escape at character ${i + 1} of the value: only \\| and \\\\ are escapes (write a backslash as \\\\)`,
        );
      }
      current += next;
      i++;
    } else if (c === '|') {
      values.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  values.push(current);
  if (values.length > FILTER_LIMITS.alternatives) {
    throw fail(`at most ${FILTER_LIMITS.alternatives} alternatives separated by | (got ${values.length})`);
  }
  values.forEach((v, i) => {
    if (v.length === 0) throw fail(`value ${i + 1} is empty (write "${NONE_VALUE}" for no value)`);
    if (v.length > FILTER_LIMITS.valueChars) {
      throw fail(`value ${i + 1} is longer than ${FILTER_LIMITS.valueChars} characters (${v.length})`);
    }
  });
  return values;
}

/** The filter as text, escaped: parseFilter(formatFilter(f)) deep-equals f. */
export function formatFilter(f: Filter): string {
  const values = f.values.map((v) => v.replaceAll('\\', '\\\\').replaceAll('|', '\\|'));
  return `${dimensionName(f.dimension)}${OP_TEXT[f.op]}${values.join('|')}`;
}

function preview(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

function invalid(field: string, message: string): TallyError {
  return new TallyError('TALLY_INVALID_QUERY', `${field}: ${message}`, {
    details: [{ index: 0, field, code: 'TALLY_INVALID_QUERY', message }],
  });
}
