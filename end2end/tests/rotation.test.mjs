// Acting on rotation status (#23) in the real Chromium against `meshport dev` (real OpenBao):
// cart is live after requests.test.mjs (this file runs after it). A developer of cart's team
// opens cart's status page, sees valkey_password at version 1 (as the bao CLI reads it),
// rotates it now with a reason, and sees version 2, which OpenBao holds; the audit trail has
// the rotation with the new version. An auditor (not of the owning team) sees no button, and
// the page's action and the REST API answer 403 to a forged call; nothing is written.
// Screenshot: end2end/artifacts/rotation-1-after.png (its path is printed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { sharedBrowser, artifactsDir, base, data, bao, demoSignIn } from './browser.mjs';

const shared = sharedBrowser();
const secretPath = 'prod-app/cart/valkey_password';


function currentVersion() {
  return JSON.parse(bao('kv', 'metadata', 'get', '-format=json', '-mount=secret', secretPath)).data.current_version;
}

const signIn = (role) => demoSignIn(shared.browser, role);

test('the owning team rotates cart\'s generated secret from its status page; OpenBao and the audit trail have version 2; others get 403', async () => {
  assert.ok(data, 'MESHPORT_E2E_DATA names meshport dev\'s data folder (scripts/test.sh sets it)');
  const before = currentVersion();
  const developer = await signIn('developer');
  const page = developer.page;
  await page.goto(`${base}/status/prod-app/cart`);
  await page.waitForSelector('#rotate-valkey_password');
  const shown = page.locator('#secret-version-valkey_password');
  assert.equal(await shown.getAttribute('data-version'), String(before));

  await page.fill('#rotate-reason-valkey_password', 'Quarterly rotation drill');
  await page.click('#rotate-valkey_password');
  await page.waitForSelector(`#secret-version-valkey_password[data-version="${before + 1}"]`, { timeout: 30_000 });
  assert.equal(currentVersion(), before + 1, 'OpenBao holds the new version');
  const file = path.join(artifactsDir, 'rotation-1-after.png');
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);

  // The auditor sees the status but no button; forged calls are refused and write nothing.
  const auditor = await signIn('auditor');
  await auditor.page.goto(`${base}/status/prod-app/cart`);
  await auditor.page.waitForSelector('#service-secrets');
  assert.equal(await auditor.page.locator('#rotate-valkey_password').count(), 0);
  const refused = await auditor.page.evaluate(async () => {
    const action = await fetch('/api/rotate_secret', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ namespace: 'prod-app', service: 'cart', secret: 'valkey_password', reason: 'not mine' }),
    });
    const api = await fetch('/api/v1/services/prod-app/cart/secrets/valkey_password/rotate', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'not mine' }),
    });
    return [action.status, api.status];
  });
  assert.deepEqual(refused, [403, 403]);
  assert.equal(currentVersion(), before + 1, 'nothing written by the refused calls');

  // The audit trail records the rotation with its new version and reason, never a value.
  const trail = await auditor.page.evaluate(async () => (await fetch('/api/audit/export?format=jsonl')).text());
  const rotations = trail.split('\n').filter((line) => line.includes('"secret_rotated"')).map((line) => JSON.parse(line));
  const last = rotations.at(-1);
  assert.ok(last, 'a secret_rotated event');
  const details = typeof last.details === 'string' ? JSON.parse(last.details) : last.details;
  assert.equal(details.version, before + 1);
  assert.equal(details.reason, 'Quarterly rotation drill');
  await developer.context.close();
  await auditor.context.close();
});
