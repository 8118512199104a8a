// Debian's Chromium driven by playwright-core, launched with flags that suit a closed network (no
// background fetches, no QUIC, no sync, no component updates) and a fresh profile each time
// (playwright-core gives every launch its own new --user-data-dir and removes it on close).
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<{ browser: Browser; close(): Promise<void> }> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (make setup does, as root: apt-get install -y chromium)`);
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
    ],
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

/**
 * A page of its own (1200 × 760, downloads accepted) whose script errors and console errors go into
 * `errors`, but for console lines matching `ignore` (a 400 or 404 a test asks for). With `url` it opens
 * it and waits until the page is live (its event stream connected).
 */
export async function openPage(browser: Browser, errors: string[], opts: { ignore?: RegExp; url?: string } = {}): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 760 }, acceptDownloads: true });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && !opts.ignore?.test(m.text()) && errors.push(m.text()));
  page.setDefaultTimeout(30_000);
  if (opts.url) {
    await page.goto(opts.url);
    // (the first page load: Chromium starting beside two other browsers can take long)
    await page.locator('[data-test=live]', { hasText: 'live' }).waitFor({ timeout: 90_000 });
  }
  return page;
}
