/**
 * The parameters of one SQL statement. `add` appends a value and returns its placeholder
 * (`$1`, `$2`, … in the order added, with an explicit cast), so no statement numbers its
 * placeholders by hand. Build the text in the same order every time for a named (prepared)
 * statement: its text must not change between calls.
 *
 * An array of strings, numbers, booleans and nulls is sent as its array literal, made here
 * (arrayLiteral) rather than by pg, which runs two regular expressions over every element and
 * quotes numbers too: pg's array formatting was ~9 % of a processor worker's CPU (issue 24, a
 * profile of bench scenario 3). Any other array (of Buffers: bytea[]) is left to pg.
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
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ',';
    if (v === null || v === undefined) out += 'NULL';
    else if (typeof v === 'string') out += SPECIAL.test(v) ? `"${v.replace(SPECIALS, '\\$&')}"` : `"${v}"`;
    else if (typeof v === 'number') out += String(v);
    else if (typeof v === 'boolean') out += v ? 't' : 'f';
    else return undefined;
  }
  return `${out}}`;
}
