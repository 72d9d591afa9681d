import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { isCi } from '../support/services.ts';

/** Debian's Chromium (`apt-get install -y chromium`); CHROMIUM_BIN overrides. */
export const chromiumBin = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const fix = 'apt-get install -y chromium (or ../shared/ci/setup-machine.sh chromium)';

/**
 * For `describe.skipIf`: whether Chromium is installed. Missing under CI throws, so a
 * green CI run always means the browser suite ran; locally it warns loudly.
 */
export function chromiumAvailable(): boolean {
  if (existsSync(chromiumBin)) return true;
  if (isCi)
    throw new Error(`CI must not skip: chromium is not available at ${chromiumBin}: ${fix}`);
  console.warn(
    `\n*** SKIPPING browser suites: chromium is not available at ${chromiumBin} (${fix}) ***\n`,
  );
  return false;
}

/**
 * Headless Chromium with a fresh profile (Playwright takes it as the persistent context's
 * folder rather than --user-data-dir), and no traffic beyond what the page asks for.
 */
export async function launchChromium(): Promise<{
  context: BrowserContext;
  close: () => Promise<void>;
}> {
  const profile = await mkdtemp(join(tmpdir(), 'sdo-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumBin,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      '--no-first-run',
    ],
  });
  return {
    context,
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
