// Browser journey on the start page, in the real Chromium: the page hydrates (the WASM runs),
// an interaction that only works once hydrated, and the platform status the server streams in.
// Run by scripts/test.sh against a running `meshport dev` at MESHPORT_E2E_URL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { sharedBrowser, artifactsDir, waitHydrated } from './browser.mjs';

const base = process.env.MESHPORT_E2E_URL ?? 'http://127.0.0.1:3000';
const shared = sharedBrowser();

test('the start page hydrates and its steps toggle works', async () => {
  const page = await shared.browser.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));

  const response = await page.goto(`${base}/`);
  assert.equal(response.status(), 200);
  assert.equal(await page.title(), 'meshport');

  // An Effect sets this only in the browser, so it proves the WASM hydrated the page.
  await waitHydrated(page, 'section[data-hydrated="true"]');

  const steps = page.locator('#onboarding-steps');
  const toggle = page.getByRole('button', { name: 'How onboarding works' });
  assert.equal(await steps.isVisible(), false);
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
  await toggle.click();
  await steps.waitFor({ state: 'visible' });
  assert.equal(await page.locator('#onboarding-steps li').count(), 4);
  assert.equal(await page.locator('#how-it-works').getAttribute('aria-expanded'), 'true');

  await page.waitForSelector('[data-check="Vault"]');
  assert.equal(await page.locator('[data-check="Database"]').innerText(), 'ready');
  assert.equal(await page.locator('[data-check="Vault"]').innerText(), 'ready');

  // Tailwind's stylesheet is served and applied.
  const css = await page.request.get(`${base}/pkg/meshport.css`);
  assert.equal(css.status(), 200);
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(background, 'rgba(0, 0, 0, 0)', 'body background comes from Tailwind');

  mkdirSync(artifactsDir, { recursive: true });
  await page.screenshot({ path: `${artifactsDir}/home.png`, fullPage: true });
  assert.deepEqual(errors, [], 'no errors in the browser console');
  await page.close();
});

test('the start page is usable before the WASM loads', async () => {
  const context = await shared.browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const response = await page.goto(`${base}/`);
  assert.equal(response.status(), 200);
  assert.match(await page.locator('h1').innerText(), /Join the service mesh/);
  await context.close();
});
