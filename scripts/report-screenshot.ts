/**
 * A full-page screenshot of an experiment's report.html in headless Chromium (the check that the page
 * renders: charts, tables, no script errors), written beside it as report.png. Needs Chromium
 * (`/usr/bin/chromium`, or EVOREC_CHROMIUM) and playwright-core (a dev dependency).
 *
 *   node --import tsx scripts/report-screenshot.ts <experiment folder or report.html> [out.png]
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const arg = process.argv[2];
if (!arg) {
  process.stderr.write('usage: node --import tsx scripts/report-screenshot.ts <experiment folder or report.html> [out.png]\n');
  process.exit(2);
}
const html = resolve(existsSync(arg) && statSync(arg).isDirectory() ? join(arg, 'report.html') : arg);
if (!existsSync(html)) {
  process.stderr.write(`${html}: not found\n`);
  process.exit(1);
}
const out = resolve(process.argv[3] ?? join(dirname(html), 'report.png'));
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({ executablePath: process.env.EVOREC_CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(pathToFileURL(html).href, { waitUntil: 'load' });
  const svgs = await page.locator('svg').count();
  const tables = await page.locator('table').count();
  await page.screenshot({ path: out, fullPage: true });
  process.stdout.write(`${out}: ${svgs} charts, ${tables} tables${errors.length ? `; page errors: ${errors.join(' | ')}` : ', no page errors'}\n`);
  if (errors.length) process.exitCode = 1;
} finally {
  await browser.close();
}
