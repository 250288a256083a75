// Launches the system Chromium through playwright-core: no browser download, quiet on a closed
// network. CHROMIUM_PATH overrides the executable.
import { before, after } from 'node:test';
import { mkdirSync } from 'node:fs';
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
