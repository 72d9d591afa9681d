/**
 * Boots the stack once: builds the images offline (cached: a few seconds when current),
 * starts a test ACME CA and DNS server for it (acme.ts), runs install.sh into a temporary
 * directory, and at the end takes every install down with its volumes, stops the CA and
 * removes the app containers the scenarios deployed.
 * SELFDEVOP_ACCEPTANCE_KEEP=1 leaves everything running for a post-mortem.
 */
import { AfterAll, BeforeAll, setDefaultTimeout } from '@cucumber/cucumber';
import { startTestAcme } from './acme.ts';
import { Install, mustRun, run } from './stack.ts';
import { suite } from './world.ts';

setDefaultTimeout(180_000);

BeforeAll({ timeout: 900_000 }, async function () {
  const t0 = Date.now();
  await mustRun('bash', ['scripts/build-test-images.sh'], { timeoutMs: 300_000 });
  const built = await mustRun('bash', ['selfhost/build-images.sh'], { timeoutMs: 900_000 });
  process.stderr.write(`acceptance: images ready in ${Date.now() - t0} ms\n${built.stdout}`);
  suite.primary = await Install.create('main');
  suite.acme = await startTestAcme(suite.primary);
  const r = await suite.primary.install({ args: suite.acme?.installArgs ?? [] });
  if (r.code !== 0) throw new Error(`install.sh failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  process.stderr.write(`acceptance: install.sh to healthy in ${r.ms} ms (${suite.primary.dir})\n`);
});

AfterAll({ timeout: 300_000 }, async function () {
  if (process.env.SELFDEVOP_ACCEPTANCE_KEEP === '1') {
    process.stderr.write(
      `acceptance: kept ${[suite.primary, ...suite.others].map((i) => i?.dir).join(', ')}\n`,
    );
    return;
  }
  for (const install of [suite.primary, ...suite.others]) await install?.destroy();
  await suite.acme?.stop();
  for (const orgId of suite.orgIds) {
    const ids = await run('docker', ['ps', '-aq', '--filter', `label=selfdevop.org=${orgId}`]);
    const list = ids.stdout.split('\n').filter(Boolean);
    if (list.length > 0) await run('docker', ['rm', '-f', '-v', ...list]);
  }
  for (const cleanup of suite.cleanups.splice(0).reverse())
    await cleanup().catch((e: unknown) =>
      process.stderr.write(`acceptance: clean-up: ${String(e)}\n`),
    );
  for (const volume of suite.dataVolumes) await run('docker', ['volume', 'rm', '-f', volume]);
  for (const network of suite.dataNetworks) await run('docker', ['network', 'rm', network]);
});
