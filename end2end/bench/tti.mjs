// Time to interactive of a page in the real Chromium with its CPU slowed down 4x through the
// Chrome DevTools Protocol (Emulation.setCPUThrottlingRate), as a mid-range phone would run
// it: from the start of the navigation until the island marks itself hydrated. Each run uses a
// fresh browser context (nothing cached). Prints one JSON line; asserts nothing.
// Usage: node end2end/bench/tti.mjs <url> <hydrated selector> [runs]
import { launchBrowser } from '../tests/browser.mjs';

const [url, selector, runs = '5'] = process.argv.slice(2);
if (!url || !selector) {
  console.error('usage: node end2end/bench/tti.mjs <url> <hydrated selector> [runs]');
  process.exit(2);
}
const browser = await launchBrowser();
const times = [];
for (let i = 0; i < Number(runs); i += 1) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
  await page.goto(url, { waitUntil: 'commit' });
  // Measured in the page, at the first animation frame that sees the marker: navigation
  // start is the origin of performance.now().
  const seen = await page.waitForFunction(
    (s) => (document.querySelector(s) ? performance.now() : false),
    selector,
    { polling: 'raf', timeout: 120_000 },
  );
  times.push(await seen.jsonValue());
  await context.close();
}
await browser.close();
times.sort((a, b) => a - b);
console.log(JSON.stringify({ url, cpu_slowdown: 4, runs: times.length, median_ms: times[Math.floor(times.length / 2)], times_ms: times }));
