// Islands mode, in the real Chromium: only a page with an interactive part (an island) loads
// the script and the WASM; every other page is server-rendered HTML and fetches neither.
// Run by scripts/test.sh against a running `meshport dev` at MESHPORT_E2E_URL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedBrowser, waitHydrated, base, demoSignIn } from './browser.mjs';

const shared = sharedBrowser();

/// Every script and WASM file the page fetches from the site's bundle, as paths.
function bundleRequests(page) {
  const fetched = [];
  page.on('request', (request) => {
    const { pathname } = new URL(request.url());
    if (/\.(js|wasm)$/.test(pathname)) fetched.push(pathname);
  });
  return fetched;
}

test('pages without islands load no script and no WASM; the form page loads them', async () => {
  for (const role of ['platform-admin', 'auditor', 'developer']) {
    const { context, page } = await demoSignIn(shared.browser, role);
    const fetched = bundleRequests(page);
    for (const path of ['/status', '/requests', '/services', '/audit', '/account', '/admin/users', '/signin']) {
      fetched.length = 0;
      const response = await page.goto(`${base}${path}`, { waitUntil: 'networkidle' });
      assert.ok(response.status() < 500, `${path}: ${response.status()}`);
      assert.deepEqual(fetched, [], `${path} (as ${role}) fetched ${fetched}`);
    }
    fetched.length = 0;
    await page.goto(`${base}/onboard`);
    await waitHydrated(page, '#onboard-form[data-hydrated="true"]');
    assert.ok(fetched.some((p) => p.endsWith('.wasm')), `the form page loads the WASM: ${fetched}`);
    await context.close();
  }
});
