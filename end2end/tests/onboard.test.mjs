// The onboarding form in the real Chromium against `meshport dev`: the shared validator judges
// fields as they are typed, "Preview" shows every manifest and Vault object, and submitting
// goes to the new request's page; the same form works with JavaScript turned off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { sharedBrowser, artifactsDir, waitHydrated, base, demoSignIn } from './browser.mjs';

const shared = sharedBrowser();

const developer = (options = {}) => demoSignIn(shared.browser, 'developer', options);

// Presses a group's "add" button and waits for the new row: drawn in place once hydrated,
// or in the page the server sends back without JavaScript.
async function addRow(page, group) {
  const rows = await page.locator(`[data-rows="${group}"] [data-row]`).count();
  await page.click(`button[value="add ${group}"]`);
  await page.waitForSelector(`[name="form[${group}][${rows}][name]"]`);
}

async function fill(page, service) {
  await page.fill('#service', service);
  await page.fill('#team', 'shop');
  await page.fill('#image', 'ghcr.io/open-telemetry/demo:2.1.3-checkout');
  await page.fill('#justification', 'Checkout calls payment over mTLS and needs its own secrets.');
  await page.fill('input[name="form[ports][0][name]"]', 'grpc');
  await page.fill('input[name="form[ports][0][number]"]', '5050');
  await page.selectOption('select[name="form[ports][0][protocol]"]', 'grpc');
  await page.fill('#callers', 'frontend');
  await addRow(page, 'secrets');
  await addRow(page, 'secrets');
  await page.fill('input[name="form[secrets][0][name]"]', 'kafka_password');
  await page.fill('input[name="form[secrets][1][name]"]', 'api_key');
  await page.selectOption('select[name="form[secrets][1][source]"]', 'provided');
  await page.fill('input[name="form[secrets][1][value]"]', 'typed-in-the-form');
}

test('the form validates as it is typed, previews every artifact and submits', async () => {
  const { context, page } = await developer();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${base}/onboard`);
  await waitHydrated(page, '#onboard-form[data-hydrated="true"]');

  // Field errors appear before any submission, from the validator running in the browser.
  await page.fill('#service', 'Checkout!');
  await page.waitForSelector('#service-errors li');
  await page.fill('input[name="form[ports][0][number]"]', 'seventy');
  await page.waitForSelector('#ports [data-row="0"] li');
  await page.screenshot({ path: path.join(artifactsDir, 'onboard-errors.png'), fullPage: true });

  await fill(page, 'checkout');
  // Rows come and go in place, without a round trip: a metrics port with its own caller.
  const before = page.url();
  await addRow(page, 'ports');
  await page.fill('input[name="form[ports][1][name]"]', 'metrics');
  await page.fill('input[name="form[ports][1][number]"]', '9464');
  await page.fill('input[name="form[ports][1][callers]"]', 'monitoring/prometheus');
  await addRow(page, 'env');
  await page.click('button[value="remove env 0"]');
  assert.equal(await page.locator('[data-rows="env"] [data-row]').count(), 0);
  assert.equal(page.url(), before);
  await page.waitForFunction(() => document.querySelectorAll('[data-errors-for] li, [data-rows] li').length === 0);
  await page.click('#preview');
  await page.waitForSelector('#preview-files');
  const paths = await page.locator('[data-preview-path]').evaluateAll((items) => items.map((i) => i.dataset.previewPath));
  assert.ok(paths.includes('manifests/prod-app/checkout/deployment.yaml'), paths.join(', '));
  assert.ok(paths.includes('vault/sys/policies/acl/prod-app-checkout.hcl'), paths.join(', '));
  assert.ok((await page.locator('#preview-files').textContent()).includes('9464'), 'the added port is previewed');
  assert.ok(!(await page.content()).includes('typed-in-the-form') || await page.inputValue('input[name="form[secrets][1][value]"]') === 'typed-in-the-form');
  await page.click('#tab-diff');
  const changes = await page.locator('#preview-diff [data-change]').evaluateAll((items) => items.map((i) => i.dataset.change));
  assert.ok(changes.length > 0 && changes.every((c) => c === 'added'), `a new service only adds files: ${changes}`);
  await page.click('#tab-vault');
  await page.screenshot({ path: path.join(artifactsDir, 'onboard-preview.png'), fullPage: true });

  await page.click('#submit');
  await page.waitForURL(/\/requests\/[0-9a-f-]{36}$/);
  await page.waitForSelector('[data-status="submitted"]');
  assert.ok(!(await page.content()).includes('typed-in-the-form'), 'the typed value is not shown');
  await page.screenshot({ path: path.join(artifactsDir, 'onboard-submitted.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test('the form works without JavaScript', async () => {
  const { context, page } = await developer({ javaScriptEnabled: false });
  await page.goto(`${base}/onboard`);
  await fill(page, 'payment');
  await page.click('#submit');
  await page.waitForURL(/\/requests\/[0-9a-f-]{36}$/);
  assert.match(await page.locator('h1').innerText(), /prod-app\/payment/);
  await context.close();
});

test('without JavaScript, field errors come back on the form with what was typed', async () => {
  const { context, page } = await developer({ javaScriptEnabled: false });
  await page.goto(`${base}/onboard`);
  await fill(page, 'Not A Name');
  await addRow(page, 'ports');
  assert.equal(await page.inputValue('input[name="form[ports][0][name]"]'), 'grpc', 'the row button kept the values');
  // ... except the typed secret value, which the row asks for again.
  await page.waitForSelector('[data-retype="1"]');
  await page.fill('input[name="form[secrets][1][value]"]', 'typed-in-the-form');
  await page.click('#submit');
  await page.waitForSelector('#form-errors li[data-field="service"][data-rule="format"]');
  await page.waitForSelector('#service-errors li');
  assert.equal(await page.inputValue('#service'), 'Not A Name');
  assert.equal(await page.inputValue('input[name="form[secrets][1][name]"]'), 'api_key');
  assert.equal(await page.inputValue('input[name="form[secrets][1][value]"]'), '', 'a secret value never comes back');
  await page.waitForSelector('[data-retype="1"]');
  assert.ok(!(await page.content()).includes('typed-in-the-form'));
  await page.screenshot({ path: path.join(artifactsDir, 'onboard-refused-without-js.png'), fullPage: true });
  await context.close();
});
