/**
 * Writes selfhost/images/caddy/caddy.json, the Caddy config the Compose stack ships, from
 * core/edge/caddy-control.ts (the code the tests configure Caddy with), so what users run
 * is what is tested. test/core/edge/shipped-base-config.test.ts fails when they differ.
 *
 * Usage: npm run edge:base-config [-- --check]
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import prettier from 'prettier';
import { composeEdgeBaseConfig } from '../core/edge/caddy-control.ts';

const target = new URL('../selfhost/images/caddy/caddy.json', import.meta.url);
const config = composeEdgeBaseConfig();

if (process.argv.includes('--check')) {
  const shipped: unknown = JSON.parse(await readFile(target, 'utf8'));
  if (!isDeepStrictEqual(shipped, config)) {
    process.stderr.write(
      `${target.pathname} differs from the generated config; run npm run edge:base-config\n`,
    );
    process.exit(1);
  }
} else {
  // Written as the repository's format check wants it, so a regeneration is a clean diff.
  const filepath = fileURLToPath(target);
  const options = (await prettier.resolveConfig(filepath)) ?? {};
  await writeFile(target, await prettier.format(JSON.stringify(config), { ...options, filepath }));
  process.stdout.write(`wrote ${target.pathname}\n`);
}
