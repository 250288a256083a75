// The whole journey in the real Chromium against `meshport dev` (real OpenBao, real local GitOps
// repository): a developer onboards cart in the form (field errors before submitting; one
// generated and one typed secret), cannot approve their own request (no button, and a forged
// post is refused); a platform admin approves; meshport provisions Vault (checked with the bao
// CLI) and opens the pull request (its branch holds exactly the service's manifests; the page
// follows by itself); the merge moves the request to merged. Screenshots of each page go to
// end2end/artifacts/journey-*.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { sharedBrowser, artifactsDir, waitHydrated, base, data, bao, demoSignIn } from './browser.mjs';



const shared = sharedBrowser();

const signIn = (role) => demoSignIn(shared.browser, role);

test('a developer onboards cart in the form, an admin approves, meshport provisions Vault and opens the pull request, and its merge moves the request', async () => {
  assert.ok(data, 'MESHPORT_E2E_DATA names meshport dev\'s data folder (scripts/test.sh sets it)');
  const developer = await signIn('developer');
  const page = developer.page;
  await page.goto(`${base}/onboard`);
  await waitHydrated(page, '#onboard-form[data-hydrated="true"]');
  // Invalid input shows field errors before anything is submitted.
  await page.fill('#service', 'Cart_Service');
  await page.waitForSelector('#service-errors li');
  await page.screenshot({ path: path.join(artifactsDir, 'journey-1-onboard-errors.png'), fullPage: true });
  await page.fill('#service', 'cart');
  await page.fill('#team', 'shop');
  await page.fill('#image', 'ghcr.io/open-telemetry/demo:2.1.3-cart');
  await page.fill('#justification', 'Cart holds session baskets; frontend calls it over mTLS.');
  await page.fill('input[name="form[ports][0][name]"]', 'grpc');
  await page.fill('input[name="form[ports][0][number]"]', '7070');
  await page.selectOption('select[name="form[ports][0][protocol]"]', 'grpc');
  await page.fill('#callers', 'frontend');
  await page.click('button[value="add env"]');
  await page.fill('input[name="form[env][0][name]"]', 'VALKEY_ADDR');
  await page.fill('input[name="form[env][0][value]"]', 'valkey-cart:6379');
  await page.click('button[value="add secrets"]');
  await page.click('button[value="add secrets"]');
  await page.fill('input[name="form[secrets][0][name]"]', 'valkey_password');
  await page.fill('input[name="form[secrets][1][name]"]', 'api_key');
  await page.selectOption('select[name="form[secrets][1][source]"]', 'provided');
  await page.fill('input[name="form[secrets][1][value]"]', 'typed-in-the-journey');
  await page.waitForFunction(() => document.querySelectorAll('[data-errors-for] li').length === 0);
  await page.click('#preview');
  await page.waitForSelector('#preview-files');
  await page.screenshot({ path: path.join(artifactsDir, 'journey-2-preview.png'), fullPage: true });
  await page.click('#submit');
  await page.waitForURL(/\/requests\/[0-9a-f-]{36}$/);
  const id = page.url().split('/').pop();

  // The requester sees the request, no decision buttons, and is refused a forged approval.
  await developer.page.goto(`${base}/requests`);
  await developer.page.waitForSelector('#requests');
  await developer.page.screenshot({ path: path.join(artifactsDir, 'journey-3-requests-developer.png') });
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
  await admin.page.screenshot({ path: path.join(artifactsDir, 'journey-4-admin-queue.png') });
  await admin.page.click(`#queue a[href="/requests/${id}"]`);
  await admin.page.waitForSelector('#approve');
  await admin.page.screenshot({ path: path.join(artifactsDir, 'journey-5-request-admin.png') });
  await admin.page.fill('#reason', 'Looks right.');
  await admin.page.click('#approve');
  await admin.page.waitForSelector('#decision-reason');

  // The engine provisions Vault and opens the pull request; the page follows by itself.
  await admin.page.waitForSelector('[data-status="pr_open"]', { timeout: 30_000 });
  const vaultPaths = await admin.page.locator('[data-vault-path]').evaluateAll((items) => items.map((i) => i.dataset.vaultPath));
  assert.ok(vaultPaths.includes('sys/policies/acl/prod-app-cart'), `the Vault objects are listed: ${vaultPaths}`);
  const steps = await admin.page.locator('[data-step]').evaluateAll((items) => items.map((i) => i.dataset.step));
  assert.deepEqual(steps, ['vault_policy', 'vault_role', 'vault_secrets', 'vault_pki', 'vault_retire_secrets', 'pull_request']);
  const pr = admin.page.locator('[data-pr-kind="onboarding"]');
  assert.equal(await pr.getAttribute('data-pr-state'), 'open');
  assert.match(await pr.innerText(), /meshport\/cart-/);
  await admin.page.screenshot({ path: path.join(artifactsDir, 'journey-6-pr-open.png') });

  // The Vault objects exist, as the bao CLI sees them.
  assert.equal(bao('kv', 'get', '-mount=secret', '-field=api_key', 'prod-app/cart/api_key'), 'typed-in-the-journey');
  assert.match(bao('kv', 'get', '-mount=secret', '-field=valkey_password', 'prod-app/cart/valkey_password'), /^[A-Za-z0-9]{32}$/);
  assert.match(bao('policy', 'read', 'prod-app-cart'), /secret\/data\/prod-app\/cart\/\*/);
  const role = JSON.parse(bao('read', '-format=json', 'auth/kubernetes/role/prod-app-cart')).data;
  assert.deepEqual([role.bound_service_account_names, role.bound_service_account_namespaces], [['cart'], ['prod-app']]);
  // The pull request's branch holds exactly the service's manifests.
  const branch = (await admin.page.locator('[data-pr-kind="onboarding"] a').innerText()).trim();
  const files = execFileSync('git', ['ls-tree', '-r', '--name-only', branch, 'manifests/prod-app/cart'], {
    cwd: path.join(data, 'gitops.git'),
    encoding: 'utf8',
  }).trim().split('\n');
  assert.deepEqual(files, [
    'manifests/prod-app/cart/authorizationpolicy-grpc.yaml',
    'manifests/prod-app/cart/deployment.yaml',
    'manifests/prod-app/cart/meshtlsauthentication-grpc.yaml',
    'manifests/prod-app/cart/server-grpc.yaml',
    'manifests/prod-app/cart/service.yaml',
    'manifests/prod-app/cart/serviceaccount.yaml',
  ]);

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
  await admin.page.screenshot({ path: path.join(artifactsDir, 'journey-7-merged.png') });
  await admin.page.goto(`${base}/services`);
  await admin.page.waitForSelector(`#services tr[data-service="prod-app/cart"] a[href="/services/prod-app/cart"]`);
  await admin.page.screenshot({ path: path.join(artifactsDir, 'journey-8-services.png') });

  await developer.context.close();
  await admin.context.close();
});
