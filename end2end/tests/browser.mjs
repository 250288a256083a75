// Launches the system Chromium through playwright-core: no browser download, quiet on a closed
// network. CHROMIUM_PATH overrides the executable.
import { before, after } from 'node:test';
import { mkdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

// How long a page may take to hydrate: meshport dev serves the unoptimised debug WASM (about
// 14 MB), compressed per request by a debug build, so on a loaded two-core machine one fetch
// can take tens of seconds. A wait, not a speed target (docs/benchmarks.md measures speed).
export const HYDRATION_TIMEOUT = 120_000;

// What went wrong in a page, kept so that a page that never hydrates says why: script errors,
// console errors and requests that failed or answered with an error status.
const troubles = new WeakMap();

/// Starts keeping `page`'s troubles (before its first navigation, to see them all).
export function watch(page) {
  if (troubles.has(page)) return page;
  const seen = [];
  troubles.set(page, seen);
  page.on('pageerror', (error) => seen.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') seen.push(`console: ${message.text()}`);
  });
  page.on('requestfailed', (request) =>
    seen.push(`request failed: ${request.url()} (${request.failure()?.errorText})`));
  page.on('response', (response) => {
    if (response.status() >= 400) seen.push(`response ${response.status()}: ${response.url()}`);
  });
  return page;
}

/// Waits for the hydrated marker `selector`; on timeout the error lists the page's troubles.
export async function waitHydrated(page, selector) {
  watch(page);
  try {
    await page.waitForSelector(selector, { timeout: HYDRATION_TIMEOUT });
  } catch (error) {
    const seen = troubles.get(page);
    const state = await page.evaluate(() => document.readyState).catch((e) => e.message);
    throw new Error(`${page.url()} did not hydrate (${selector}); document ${state}; `
      + `troubles: ${seen.length ? seen.join(' | ') : 'none seen'}\n${error.message}`);
  }
}

export const artifactsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

// One Chromium for the tests of a file: launched before them, closed after them. Use
// `shared.browser` inside the tests.
export function sharedBrowser() {
  const shared = { browser: undefined };
  before(async () => {
    shared.browser = await launchBrowser();
    mkdirSync(artifactsDir, { recursive: true });
  });
  after(async () => {
    await shared.browser?.close();
  });
  return shared;
}

// The portal under test and `meshport dev`'s data folder (its OpenBao's address and token, and
// the local GitOps repository), as scripts/test.sh passes them.
export const base = process.env.MESHPORT_E2E_URL ?? 'http://127.0.0.1:3000';
export const data = process.env.MESHPORT_E2E_DATA;

/// The bao CLI against meshport dev's OpenBao.
export function bao(...args) {
  const env = { ...process.env };
  for (const [, name, value] of readFileSync(path.join(data, 'openbao.env'), 'utf8').matchAll(/(\w+)=(\S+)/g)) {
    env[name] = value;
  }
  return execFileSync(process.env.MESHPORT_DEV__BAO_BIN ?? 'bao', args, { env, encoding: 'utf8' });
}

/// A new browser context (with `options`) signed in as `meshport dev`'s demo identity of
/// `role`; the sign-in page is rendered whole, so this works without JavaScript too.
export async function demoSignIn(browser, role, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = watch(await context.newPage());
  await page.goto(`${base}/signin`);
  await page.click(`button[data-demo-role="${role}"]`);
  await page.waitForURL(`${base}/`);
  return { context, page };
}
