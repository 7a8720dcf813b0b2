// Runs node_modules/.cache/rlora-bench/chart.html (built by bench/ts/build.mjs) in headless Chromium through playwright-core and
// prints the frame times the page measured as JSON. Chromium: $CHROMIUM or /usr/bin/chromium.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const page = join(here, '..', '..', 'node_modules', '.cache', 'rlora-bench', 'chart.html');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(executablePath)) {
  process.stdout.write(`${JSON.stringify({ skipped: `no Chromium at ${executablePath} (set CHROMIUM)` })}\n`);
  process.exit(0);
}
const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
try {
  const tab = await browser.newPage({ viewport: { width: 1280, height: 720 }, deviceScaleFactor: 1 });
  await tab.goto(pathToFileURL(page).href);
  await tab.waitForFunction(() => globalThis.__benchResult || globalThis.__benchError, null, { timeout: 300_000 });
  const error = await tab.evaluate(() => globalThis.__benchError);
  if (error) throw new Error(`chart page failed: ${error}`);
  const result = await tab.evaluate(() => globalThis.__benchResult);
  result.browser = `Chromium ${browser.version()} (headless)`;
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  await browser.close();
}
