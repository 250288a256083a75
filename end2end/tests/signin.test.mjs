// Sign-in journey in the real Chromium: through the real OpenID provider's login page and back,
// name and role in the header, sign-out at meshport and at the provider. Also the demo
// identities of `meshport dev` and its banner. Run by scripts/test.sh, which starts the provider
// (end2end/oidc-provider.mjs, users in end2end/oidc-users.json) and points meshport dev at it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { sharedBrowser, artifactsDir, waitHydrated } from './browser.mjs';

const base = process.env.MESHPORT_E2E_URL ?? 'http://127.0.0.1:3000';
const shared = sharedBrowser();

// Errors on meshport's pages (the provider's pages are not ours: its missing favicon, say).
function watchErrors(page) {
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error' && page.url().startsWith(base)) errors.push(message.text());
  });
  return errors;
}

test('a developer signs in at the identity provider, sees name and role, and signs out', async () => {
  const context = await shared.browser.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page);

  await page.goto(`${base}/`);
  await waitHydrated(page, 'section[data-hydrated="true"]');
  await page.click('#sign-in');
  await page.waitForURL(`${base}/signin`);
  await page.click('#sign-in-oidc');

  // The provider's own login page.
  await page.waitForSelector('input[name="login"]');
  assert.ok(!page.url().startsWith(base), `expected the provider, got ${page.url()}`);
  await page.fill('input[name="login"]', 'dana@shop.example');
  await page.fill('input[name="password"]', 'dana-password');
  await page.click('#sign-in');

  await page.waitForURL(`${base}/`);
  await page.waitForSelector('#signed-in-as');
  assert.match(await page.locator('#signed-in-as').innerText(), /Dana Developer/);
  assert.equal(await page.locator('#signed-in-roles').innerText(), 'Developer');
  await page.screenshot({ path: path.join(artifactsDir, 'signed-in.png') });

  // Sign-out ends meshport's session and asks the provider to end its own.
  await page.click('#sign-out');
  await page.waitForSelector('button[name="logout"]');
  assert.ok(!page.url().startsWith(base), 'the provider asks to end its session too');
  await page.click('button[name="logout"]');
  await page.waitForURL(`${base}/`);
  await page.waitForSelector('#sign-in');
  assert.equal(await page.locator('#signed-in-as').count(), 0);
  assert.deepEqual(errors, [], 'no errors in the browser console (CSP included)');
  await context.close();
});

test('an auditor sees the verified trail and downloads it', async () => {
  const context = await shared.browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  await page.goto(`${base}/signin`);
  await page.click('button[data-demo-role="auditor"]');
  await page.waitForURL(`${base}/`);
  await page.goto(`${base}/audit`);
  assert.match(await page.locator('#audit-status').innerText(), /^Intact: \d+ events/);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-csv')]);
  assert.match(download.suggestedFilename(), /^meshport-audit-.*\.csv$/);
  await context.close();
});

test('meshport dev offers demo identities behind a visible banner', async () => {
  const context = await shared.browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/signin`);
  assert.match(await page.locator('#demo-banner').innerText(), /Demo mode/);
  await page.click('button[data-demo-role="platform-admin"]');
  await page.waitForURL(`${base}/`);
  await page.waitForSelector('#signed-in-roles');
  assert.equal(await page.locator('#signed-in-roles').innerText(), 'Platform admin');
  await context.close();
});
