// The request journey in the real Chromium against `meshport dev` (real OpenBao, real local
// GitOps repository): a developer submits, cannot approve their own request (no button, and a
// forged post is refused), a platform admin approves on the request page, meshport provisions
// Vault and opens the pull request (the page follows by itself), and the merge moves the request
// to merged. Screenshots of each page go to end2end/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { launchBrowser, artifactsDir } from './browser.mjs';

const base = process.env.MESHPORT_E2E_URL ?? 'http://127.0.0.1:3000';
let browser;

before(async () => {
  browser = await launchBrowser();
  mkdirSync(artifactsDir, { recursive: true });
});

after(async () => {
  await browser?.close();
});

const cart = {
  service: 'cart',
  namespace: 'prod-app',
  team: 'shop',
  justification: 'Cart holds session baskets; frontend calls it over mTLS.',
  image: 'ghcr.io/open-telemetry/demo:2.1.3-cart',
  replicas: 2,
  ports: [{ name: 'grpc', number: 7070, protocol: 'grpc' }],
  resources: { cpu_request: '100m', memory_request: '128Mi', cpu_limit: '', memory_limit: '256Mi' },
  env: [{ name: 'VALKEY_ADDR', value: 'valkey-cart:6379' }],
  secrets: [
    { name: 'valkey_password', source: { kind: 'generate', length: 32, alphabet: 'alphanumeric' } },
    { name: 'api_key', source: { kind: 'provided', value: 'typed-in-the-journey' } },
  ],
  allowed_callers: ['frontend'],
  certificate: null,
  rotation_days: 30,
};

async function signIn(role) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/signin`);
  await page.click(`button[data-demo-role="${role}"]`);
  await page.waitForURL(`${base}/`);
  return { context, page };
}

test('a developer submits, an admin approves on the request page, meshport opens the pull request, and its merge moves the request', async () => {
  const developer = await signIn('developer');
  const id = await developer.page.evaluate(async (request) => {
    const response = await fetch('/api/submit_request', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ request }),
    });
    if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
    return response.json();
  }, cart);

  // The requester sees the request, no decision buttons, and is refused a forged approval.
  await developer.page.goto(`${base}/requests`);
  await developer.page.waitForSelector('#requests');
  await developer.page.screenshot({ path: path.join(artifactsDir, 'requests-developer.png') });
  await developer.page.goto(`${base}/requests/${id}`);
  await developer.page.waitForSelector('[data-status="submitted"]');
  assert.equal(await developer.page.locator('#approve').count(), 0);
  const forged = await developer.page.evaluate(async (id) => {
    const response = await fetch('/api/act_on_request', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ id, action: 'approve', reason: '' }),
    });
    return response.status;
  }, id);
  assert.equal(forged, 403);
  assert.ok(!(await developer.page.content()).includes('typed-in-the-journey'), 'the typed value is not shown');

  // A platform admin approves on the page.
  const admin = await signIn('platform-admin');
  await admin.page.goto(`${base}/requests`);
  await admin.page.screenshot({ path: path.join(artifactsDir, 'admin-queue.png') });
  await admin.page.click(`#queue a[href="/requests/${id}"]`);
  await admin.page.waitForSelector('#approve');
  await admin.page.screenshot({ path: path.join(artifactsDir, 'request-submitted-admin.png') });
  await admin.page.fill('#reason', 'Looks right.');
  await admin.page.click('#approve');
  await admin.page.waitForSelector('#decision-reason');

  // The engine provisions Vault and opens the pull request; the page follows by itself.
  await admin.page.waitForSelector('[data-status="pr_open"]', { timeout: 30_000 });
  const steps = await admin.page.locator('[data-step]').evaluateAll((items) => items.map((i) => i.dataset.step));
  assert.deepEqual(steps, ['vault_policy', 'vault_role', 'vault_secrets', 'vault_pki', 'pull_request']);
  const pr = admin.page.locator('[data-pr-kind="onboarding"]');
  assert.equal(await pr.getAttribute('data-pr-state'), 'open');
  assert.match(await pr.innerText(), /meshport\/cart-/);
  await admin.page.screenshot({ path: path.join(artifactsDir, 'request-pr-open.png') });

  // The local forge's pull request is merged in meshport; the request follows it.
  const merged = await admin.page.evaluate(async (id) => {
    const pulls = await (await fetch(`/api/requests/${id}/pull-requests`)).json();
    const response = await fetch(`/api/pull-requests/${pulls[0].id}/merge`, { method: 'POST' });
    return response.status;
  }, id);
  assert.equal(merged, 200);
  await admin.page.goto(`${base}/requests/${id}`);
  await admin.page.waitForSelector('[data-status="merged"]');
  assert.equal(await admin.page.locator('[data-pr-kind="onboarding"]').getAttribute('data-pr-state'), 'merged');
  await admin.page.screenshot({ path: path.join(artifactsDir, 'request-merged.png') });
  await admin.page.goto(`${base}/services`);
  await admin.page.waitForSelector(`#services a[href="/requests/${id}"]`);
  await admin.page.screenshot({ path: path.join(artifactsDir, 'services.png') });

  await developer.context.close();
  await admin.context.close();
});
