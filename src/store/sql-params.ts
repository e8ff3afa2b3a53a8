/**
 * The parameters of one SQL statement. `add` appends a value and returns its placeholder
 * (`$1`, `$2`, … in the order added, with an explicit cast), so no statement numbers its
 * placeholders by hand. Build the text in the same order every time for a named (prepared)
 * statement: its text must not change between calls.
 *
 * An array of strings, numbers, booleans and nulls is sent as its array literal, made here
 * (arrayLiteral) rather than by pg, which runs two regular expressions over every element, quotes
 * numbers too and concatenates the literal piece by piece: a rope of thousands of strings per
 * array that lives until pg writes it out and is then flattened. pg's formatting and the garbage
 * it left were most of a processor worker's own CPU per event in bench/worker-lab.ts (issue 24;
 * docs/benchmarks.md has the figures). Any other array (of Buffers: bytea[]) is left to pg.
 */
export class SqlParams {
  readonly values: unknown[] = [];

  /** The placeholder of `value`, cast to `type` (an SQL type such as `text[]`). */
  add(value: unknown, type: string): string {
    this.values.push(Array.isArray(value) ? (arrayLiteral(value) ?? value) : value);
    return `$${this.values.length}::${type}`;
  }
}

const SPECIAL = /["\\]/;
const SPECIALS = /["\\]/g;

/**
 * The one-dimensional PostgreSQL array literal of `values` (text input, e.g. `{"a","b\"c",NULL}`
 * or `{1,2.5}`), or undefined when an element is not a string, number, boolean or null. Every
 * string is quoted (so '', 'NULL', ' a' and '{' stay strings) with `"` and `\` escaped; numbers
 * are written as JavaScript writes them (NaN and ±Infinity included), which float8 and the
 * integer types read back exactly.
 */
export function arrayLiteral(values: readonly unknown[]): string | undefined {
  if (values.length === 0) return '{}';
  // Joined, never concatenated: `+=` would make a rope of thousands of string pieces that lives
  // until pg writes the value out, and is then flattened (both cost more than the array).
  switch (uniform(values)) {
    case 'plain strings':
      return `{"${values.join('","')}"}`;
    case 'numbers':
      return `{${values.join(',')}}`;
    case 'mixed':
      break;
  }
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) parts[i] = 'NULL';
    else if (typeof v === 'string')
      parts[i] = SPECIAL.test(v) ? `"${v.replace(SPECIALS, '\\$&')}"` : `"${v}"`;
    else if (typeof v === 'number') parts[i] = String(v);
    else if (typeof v === 'boolean') parts[i] = v ? 't' : 'f';
    else return undefined;
  }
  return `{${parts.join(',')}}`;
}

/**
 * Whether every element is a string with nothing to escape, or every element a number: then
 * Array.prototype.join writes the literal with no string made per element.
 */
function uniform(values: readonly unknown[]): 'plain strings' | 'numbers' | 'mixed' {
  if (typeof values[0] === 'string') {
    for (const v of values) if (typeof v !== 'string' || SPECIAL.test(v)) return 'mixed';
    return 'plain strings';
  }
  if (typeof values[0] === 'number') {
    for (const v of values) if (typeof v !== 'number') return 'mixed';
    return 'numbers';
  }
  return 'mixed';
}
