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

/// A new browser context signed in as `meshport dev`'s demo identity of `role`.
export async function demoSignIn(browser, role) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${base}/signin`);
  await page.click(`button[data-demo-role="${role}"]`);
  await page.waitForURL(`${base}/`);
  return { context, page };
}
