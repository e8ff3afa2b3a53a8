import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
// Pages that send events run with real browsers' user agents: Tally flags headless Chromium's
// own ("HeadlessChrome") as a bot and leaves bots out of every number (issue 20).
export const DESKTOP_UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
export const PHONE_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

/** Polls `probe` until it returns a value that `ok` accepts; fails with the last value after `ms`. */
export async function eventually<T>(
  probe: () => Promise<T>,
  ok: (v: T) => boolean,
  ms: number,
  what: string,
) {
  const deadline = Date.now() + ms;
  let last: T;
  for (;;) {
    last = await probe();
    if (ok(last)) return last;
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last)} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  return (await res.json()) as T;
}

/** The raw number a dashboard element shows (its data-value), or null when it shows none. */
export function tileValue(page: Page, id: string): Promise<number | null> {
  // Browser-side code is passed as text: the test project is type-checked without the DOM library.
  return page.evaluate<number | null>(
    `(() => { const v = document.getElementById(${JSON.stringify(id)})?.dataset.value; return v === undefined ? null : Number(v); })()`,
  );
}

/**
 * Waits until the dashboard shows every part of the view with exactly these filters: `data-view`
 * on <body>, which the page sets once all parts of a load are drawn and removes while one runs
 * (parts load on their own, so one part showing the new view says nothing of the others).
 */
export async function settled(page: Page, filters: readonly string[], timeout = 15_000): Promise<void> {
  // A function, not a string: the dashboard's CSP forbids eval, which a string would need here.
  // The test project is type-checked without the DOM library, hence `globalThis` untyped.
  await page.waitForFunction(
    (want) => {
      const view = (globalThis as unknown as { document: { body: { dataset: { view?: string } } } }).document
        .body.dataset.view;
      return view !== undefined && JSON.stringify(new URLSearchParams(view).getAll('filter')) === want;
    },
    JSON.stringify(filters),
    { timeout },
  );
}

/**
 * Teardown steps run in reverse order in one after-hook. TRICKY: node:test runs after-hooks in
 * registration order; teardown must run in reverse (the browser before Tally, Tally before its
 * data directory), so it is one hook over a stack.
 */
export function teardownStack(t: TestContext): (step: () => Promise<unknown>) => void {
  const steps: (() => Promise<unknown>)[] = [];
  t.after(async () => {
    const failures = [];
    for (const step of steps.reverse()) {
      try {
        await step();
      } catch (err) {
        failures.push(err);
      }
    }
    if (failures.length > 0) throw failures[0];
  });
  return (step) => steps.push(step);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-gpu',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
}
