// Change sets (#20) in the real Chromium against `meshport dev` (real OpenBao, real local GitOps
// repository). A developer onboards shipping (its own service: the other journeys use cart,
// checkout and payment, and this file runs before them), a platform admin approves and the
// pull request is merged: version 1. The developer then proposes a change from the service's
// page, in the form opened with the live spec: a caller added, a generated secret added, the
// image tag bumped; the preview shows exactly those three differences and the request page the
// same. The requester cannot approve it; the admin does; the pull request's branch differs from
// main only in the files the change touches; merged, the service is at version 2 with both
// change sets in its history. A second change removes the secret: approved and provisioned, the
// Vault secret is retired (kept, its metadata marked `offboarded_at`).
// Screenshots go to end2end/artifacts/changes-*.png (their paths are printed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { sharedBrowser, artifactsDir, waitHydrated, base, data, bao, demoSignIn } from './browser.mjs';

const shared = sharedBrowser();

const namespace = 'prod-app';
const service = 'shipping';
const image = 'ghcr.io/open-telemetry/demo:2.1.3-shipping';
const bumped = 'ghcr.io/open-telemetry/demo:2.1.4-shipping';


/// git in meshport dev's local GitOps repository (bare).
function git(...args) {
  return execFileSync('git', args, { cwd: path.join(data, 'gitops.git'), encoding: 'utf8' });
}

const signIn = (role) => demoSignIn(shared.browser, role);

async function screenshot(page, name) {
  const file = path.join(artifactsDir, `changes-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

// Presses a group's "add" button and waits for the new row.
async function addRow(page, group) {
  const rows = await page.locator(`[data-rows="${group}"] [data-row]`).count();
  await page.click(`button[value="add ${group}"]`);
  await page.waitForSelector(`[name="form[${group}][${rows}][name]"]`);
  return rows;
}

/// The admin approves the change set `id` on its page and waits for its pull request; returns
/// the pull request's branch.
async function approve(admin, id, screenshotName) {
  await admin.page.goto(`${base}/requests/${id}`);
  await admin.page.waitForSelector('#approve');
  if (screenshotName) await screenshot(admin.page, screenshotName);
  await admin.page.fill('#reason', 'Reviewed the differences.');
  await admin.page.click('#approve');
  await admin.page.waitForSelector('#decision-reason');
  // The engine provisions Vault and opens the pull request; the page follows by itself.
  await admin.page.waitForSelector('[data-status="pr_open"]', { timeout: 60_000 });
  const pr = admin.page.locator('#pull-requests li');
  assert.equal(await pr.count(), 1);
  assert.equal(await pr.getAttribute('data-pr-state'), 'open');
  const branch = (await pr.locator('a').innerText()).trim();
  assert.match(branch, new RegExp(`meshport/${service}-`));
  return branch;
}

/// Merges the change set's pull request in the local forge (as the admin) and waits for the
/// request to follow.
async function merge(admin, id) {
  const status = await admin.page.evaluate(async (id) => {
    const pulls = await (await fetch(`/api/requests/${id}/pull-requests`)).json();
    const response = await fetch(`/api/pull-requests/${pulls[0].id}/merge`, { method: 'POST' });
    return response.status;
  }, id);
  assert.equal(status, 200);
  await admin.page.goto(`${base}/requests/${id}`);
  await admin.page.waitForSelector('[data-status="merged"]');
}

/// Opens the change form of the live service, hydrated, from the service page's link.
async function openChangeForm(page) {
  await page.goto(`${base}/services/${namespace}/${service}`);
  await page.click('#change-service');
  await page.waitForURL(`${base}/services/${namespace}/${service}/change`);
  await waitHydrated(page, '#onboard-form[data-hydrated="true"]');
}

async function previewFields(page) {
  await page.click('#preview');
  await page.waitForSelector('#preview-differences li');
  return page.locator('#preview-differences li').evaluateAll((items) => items.map((i) => i.dataset.field));
}

test('a live service changes by change sets: preview, second-person approval, a pull request of the changed files, the next version; a removed secret is retired in Vault', async () => {
  assert.ok(data, 'MESHPORT_E2E_DATA names meshport dev\'s data folder (scripts/test.sh sets it)');
  const developer = await signIn('developer');
  const admin = await signIn('platform-admin');
  const page = developer.page;
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));

  // Version 1: onboarded, approved, merged.
  await page.goto(`${base}/onboard`);
  await waitHydrated(page, '#onboard-form[data-hydrated="true"]');
  await page.fill('#service', service);
  await page.fill('#team', 'shop');
  await page.fill('#image', image);
  await page.fill('#justification', 'Shipping quotes delivery costs; checkout calls it over mTLS.');
  await page.fill('input[name="form[ports][0][name]"]', 'grpc');
  await page.fill('input[name="form[ports][0][number]"]', '50051');
  await page.selectOption('select[name="form[ports][0][protocol]"]', 'grpc');
  await page.fill('#callers', 'frontend');
  await addRow(page, 'secrets');
  await page.fill('input[name="form[secrets][0][name]"]', 'db_password');
  await page.waitForFunction(() => document.querySelectorAll('[data-errors-for] li').length === 0);
  await page.click('#submit');
  await page.waitForURL(/\/requests\/[0-9a-f-]{36}$/);
  const onboarding = page.url().split('/').pop();
  await approve(admin, onboarding);
  await merge(admin, onboarding);

  await page.goto(`${base}/services/${namespace}/${service}`);
  await page.waitForSelector('#service-version');
  assert.equal((await page.locator('#service-version').innerText()).trim(), 'version 1');
  assert.equal((await page.locator('#live-image').innerText()).trim(), image);
  assert.match(await page.locator('#change-service').innerText(), /Propose a change/);

  // The change form holds the live spec; the developer changes three things.
  await openChangeForm(page);
  assert.equal(await page.inputValue('#service'), service);
  assert.equal(await page.inputValue('#image'), image);
  assert.equal(await page.inputValue('#callers'), 'frontend');
  assert.equal(await page.inputValue('input[name="form[secrets][0][name]"]'), 'db_password');
  assert.equal(await page.inputValue('#justification'), '', 'a change set needs its own justification');
  await page.fill('#callers', 'frontend, checkout');
  const row = await addRow(page, 'secrets');
  assert.equal(row, 1);
  await page.fill(`input[name="form[secrets][${row}][name]"]`, 'api_token');
  await page.selectOption(`select[name="form[secrets][${row}][source]"]`, 'generate');
  await page.fill('#image', bumped);
  await page.fill('#justification', 'Checkout quotes shipping at payment; shipping needs an API token for the carrier.');
  await page.waitForFunction(() => document.querySelectorAll('[data-errors-for] li').length === 0);
  const previewed = await previewFields(page);
  assert.deepEqual(previewed, ['allowed_callers', 'image', 'secrets[api_token]']);
  const vaultPreview = await page.locator('#preview-vault li').allInnerTexts();
  assert.ok(vaultPreview.some((line) => line.includes(`${namespace}/${service}/api_token`)), `the new secret is in the Vault preview: ${vaultPreview}`);
  await screenshot(page, '1-preview');
  await page.click('#submit');
  await page.waitForURL(/\/requests\/[0-9a-f-]{36}$/);
  const change = page.url().split('/').pop();
  assert.notEqual(change, onboarding);
  await page.waitForSelector('#change-kind');
  assert.equal(await page.locator('#change-kind').getAttribute('data-kind'), 'modify');
  assert.equal(await page.locator('[data-status="submitted"]').count(), 1);
  const differences = await page.locator('#differences tr[data-field]').evaluateAll((rows) => rows.map((r) => r.dataset.field));
  assert.deepEqual(differences, ['allowed_callers', 'image', 'secrets[api_token]']);

  // The requester cannot approve: no decision section, and a forged approval is refused.
  assert.equal(await page.locator('#approve').count(), 0);
  const forged = await page.evaluate(async (id) => {
    const response = await fetch('/api/act_on_request', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ id, action: 'approve', reason: '' }),
    });
    return response.status;
  }, change);
  assert.equal(forged, 403);
  // The service page links the change set in flight and offers no second one.
  await page.goto(`${base}/services/${namespace}/${service}`);
  await page.waitForSelector(`#open-change[href="/requests/${change}"]`);
  assert.equal(await page.locator('#change-service').count(), 0);

  // Another person, a platform admin, approves; the pull request holds only the changed files.
  const branch = await approve(admin, change, '2-approval');
  const files = git('diff', '--name-only', 'main', branch).trim().split('\n').sort();
  const folder = `manifests/${namespace}/${service}`;
  // The image and the secret change the deployment, the caller the port's mTLS identities;
  // the service account, the service and the port's server and policy stay as they are.
  assert.deepEqual(files, [`${folder}/deployment.yaml`, `${folder}/meshtlsauthentication-grpc.yaml`]);
  // The request page listed the same manifests (besides the Vault objects it writes).
  const listed = await admin.page.locator('#change-files li[data-path^="manifests/"]').evaluateAll((items) => items.map((i) => i.dataset.path).sort());
  assert.deepEqual(listed, files);
  assert.match(git('show', `${branch}:${folder}/deployment.yaml`), /2\.1\.4-shipping/);
  // The new secret exists in Vault.
  assert.match(bao('kv', 'get', '-mount=secret', '-field=api_token', `${namespace}/${service}/api_token`), /^\S{16,}$/);
  await merge(admin, change);

  // Version 2, with both change sets in the service's history.
  await page.goto(`${base}/services/${namespace}/${service}`);
  await page.waitForSelector('#history');
  assert.equal((await page.locator('#service-version').innerText()).trim(), 'version 2');
  assert.equal((await page.locator('#live-image').innerText()).trim(), bumped);
  const history = await page.locator('#history tbody tr').evaluateAll((rows) => rows.map((r) => ({
    href: r.querySelector('a').getAttribute('href'),
    kind: r.querySelector('td[data-kind]').dataset.kind,
    status: r.querySelector('[data-status]').dataset.status,
  })));
  assert.deepEqual(
    history.map((h) => h.href).sort(),
    [`/requests/${onboarding}`, `/requests/${change}`].sort(),
    `both change sets are listed: ${JSON.stringify(history)}`,
  );
  assert.deepEqual(history.map((h) => h.kind).sort(), ['modify', 'onboard']);
  assert.ok(history.every((h) => h.status === 'merged'), JSON.stringify(history));
  await screenshot(page, '3-service-version-2');

  // A second change removes the secret; provisioned, its Vault secret is retired and kept.
  await openChangeForm(page);
  assert.equal(await page.inputValue('#image'), bumped);
  assert.equal(await page.inputValue('input[name="form[secrets][1][name]"]'), 'api_token');
  await page.click('button[value="remove secrets 1"]');
  await page.waitForFunction(() => !document.querySelector('[name="form[secrets][1][name]"]'));
  await page.fill('#justification', 'The carrier API moved to OAuth; the token is no longer used.');
  assert.deepEqual(await previewFields(page), ['secrets[api_token]']);
  const retiring = await page.locator('#preview-vault li[data-change="retire"]').allInnerTexts();
  assert.ok(retiring.some((line) => line.includes(`${namespace}/${service}/api_token`)), `the preview retires the secret: ${retiring}`);
  await page.click('#submit');
  await page.waitForURL(/\/requests\/[0-9a-f-]{36}$/);
  const removal = page.url().split('/').pop();
  await page.waitForSelector('#change-kind');
  assert.equal(await page.locator('#change-kind').getAttribute('data-kind'), 'modify');
  await approve(admin, removal);
  const steps = await admin.page.locator('[data-step]').evaluateAll((items) => items.map((i) => i.dataset.step));
  assert.ok(steps.includes('vault_retire_secrets'), `the retire step ran: ${steps}`);
  const metadata = JSON.parse(bao('kv', 'metadata', 'get', '-mount=secret', '-format=json', `${namespace}/${service}/api_token`)).data;
  assert.ok(metadata.custom_metadata?.offboarded_at, `the secret is marked offboarded: ${JSON.stringify(metadata.custom_metadata)}`);
  // Kept, not destroyed (the default retention): its value is still readable.
  assert.match(bao('kv', 'get', '-mount=secret', '-field=api_token', `${namespace}/${service}/api_token`), /^\S{16,}$/);
  // The secret that stays is untouched.
  const kept = JSON.parse(bao('kv', 'metadata', 'get', '-mount=secret', '-format=json', `${namespace}/${service}/db_password`)).data;
  assert.equal(kept.custom_metadata?.offboarded_at, undefined);
  await merge(admin, removal);
  await page.goto(`${base}/services/${namespace}/${service}`);
  await page.waitForSelector('#history');
  assert.equal((await page.locator('#service-version').innerText()).trim(), 'version 3');
  assert.equal(await page.locator('#history tbody tr').count(), 3);

  assert.deepEqual(errors, [], 'no script errors on the developer\'s pages');
  await developer.context.close();
  await admin.context.close();
});
