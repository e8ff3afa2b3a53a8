/**
 * The parameters of one SQL statement. `add` appends a value and returns its placeholder
 * (`$1`, `$2`, … in the order added, with an explicit cast), so no statement numbers its
 * placeholders by hand. Build the text in the same order every time for a named (prepared)
 * statement: its text must not change between calls.
 */
export class SqlParams {
  readonly values: unknown[] = [];

  /** The placeholder of `value`, cast to `type` (an SQL type such as `text[]`). */
  add(value: unknown, type: string): string {
    this.values.push(value);
    return `$${this.values.length}::${type}`;
  }
}
