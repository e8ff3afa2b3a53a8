import fc from 'fast-check';
import { cacheKey } from '../../src/query/cache.ts';

/** Project names that trip a careless glob or prefix match: one another's prefixes, glob characters, JSON escapes. */
export const PURGE_PROJECTS = ['shop', 'shop2', 's', 'sh*p', 'a[b]', 'q?', 'back\\slash', 'quo"te', 'x^y'];

/** One cached answer: under which version, of which project, to which question. */
export interface Entry {
  version: number;
  project: string;
  question: string;
}

export const entriesArb = fc.array(
  fc.record({
    version: fc.nat(5),
    project: fc.constantFrom(...PURGE_PROJECTS),
    // Questions that carry another project's key text inside them, too.
    question: fc.oneof(fc.string(), fc.constantFrom(':["shop",', '","shop",', '*', 'shop')),
  }),
  { maxLength: 40 },
);

/** The reference, from the contract: after purge(project), the keys of every other project stay, no key of it does. */
export function keysLeft(entries: readonly Entry[], project: string): string[] {
  return [...new Set(entries.filter((e) => e.project !== project).map((e) => keyOf(e)))].sort();
}

/** How many distinct keys `project` had. */
export function keysOf(entries: readonly Entry[], project: string): number {
  return new Set(entries.filter((e) => e.project === project).map((e) => keyOf(e))).size;
}

export function keyOf(e: Entry): string {
  return cacheKey(e.version, e.project, e.question);
}
