/** Orders strings by UTF-16 code unit, as `<` does: a total order independent of locale. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
