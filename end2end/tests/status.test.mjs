// Certificate and rotation status in the real Chromium against `meshport dev`, after the
// journey in requests.test.mjs onboarded cart: the platform overview counts cart's two secrets,
// draws them on the server-rendered 90-day timeline and links to cart's own page; no secret
// value is on either page. Screenshots: end2end/artifacts/journey-8-status.png and
// journey-9-service-status.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { sharedBrowser, artifactsDir } from './browser.mjs';

const base = process.env.MESHPORT_E2E_URL ?? 'http://127.0.0.1:3000';
const shared = sharedBrowser();

test('everyone signed in sees the status overview with its timeline, and a service\'s own status', async () => {
  const context = await shared.browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${base}/signin`);
  await page.click('button[data-demo-role="developer"]');
  await page.waitForURL(`${base}/`);

  // The status refreshes in the background (every 60 s by default): reload until cart's
  // secrets are read.
  const secret = '[data-key="vault/secret/prod-app/cart/valkey_password"]';
  for (let attempt = 0; attempt < 100; attempt += 1) {
    await page.goto(`${base}/status`);
    if (await page.locator(`#status-timeline ${secret}`).count() > 0) break;
    await page.waitForTimeout(1000);
  }
  const row = page.locator(`#status-timeline g${secret}`);
  assert.equal(await row.count(), 1, 'cart\'s generated secret is on the timeline');
  assert.equal(await row.getAttribute('data-state'), 'ok');
  assert.match(await page.locator('#status-timeline svg title').first().textContent(), /items renew, are due or expire by/);
  const counts = Object.fromEntries(await page.locator('#status-counts li').evaluateAll((items) =>
    items.map((i) => [i.dataset.state, Number(i.querySelector('span').textContent)])));
  assert.ok(counts.ok >= 2, `cart's two secrets are counted as OK: ${JSON.stringify(counts)}`);
  const vault = page.locator('#status-sources [data-source="vault"]');
  assert.equal(await vault.getAttribute('data-reachable'), 'true');
  assert.ok(!(await page.content()).includes('typed-in-the-journey'), 'no secret value on the page');
  await page.screenshot({ path: path.join(artifactsDir, 'journey-8-status.png'), fullPage: true });

  // From the soonest list to cart's own page.
  await page.click('#status-soonest a[href="/status/prod-app/cart"] >> nth=0');
  await page.waitForURL(`${base}/status/prod-app/cart`);
  await page.waitForSelector('#service-items');
  const keys = await page.locator('#service-items tr[data-key]').evaluateAll((rows) => rows.map((r) => r.dataset.key).sort());
  assert.deepEqual(keys, ['vault/secret/prod-app/cart/api_key', 'vault/secret/prod-app/cart/valkey_password']);
  assert.equal(await page.locator('#status-timeline g[data-key]').count(), 2);
  assert.ok(!(await page.content()).includes('typed-in-the-journey'));
  await page.screenshot({ path: path.join(artifactsDir, 'journey-9-service-status.png'), fullPage: true });
  await context.close();
});
