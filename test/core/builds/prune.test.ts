/**
 * Which built images the prune keeps: a pure decision from a service's releases, tested by
 * exact equality; then the job over the in-memory engine.
 */
import { describe, expect, it } from 'vitest';
import { imagesToKeep, pruneBuildImages } from '../../../core/builds/prune.ts';
import type { Release } from '../../../core/models.ts';
import { aRelease } from '../releases/builders.ts';
import { MemorySource } from '../../../adapters/source/memory.ts';
import type { GitSource } from '../../../core/models.ts';
import { createRelease } from '../../../core/releases/engine.ts';
import { deployer, dockerHost, setup } from '../releases/harness.ts';

const sha = (c: string) => c.repeat(40);
let n = 0;
const r = (o: Partial<Release>): Release =>
  aRelease({
    id: `rel_${String(++n).padStart(6, '0')}`,
    createdAt: `2026-01-01T00:00:${String(n).padStart(2, '0')}.000Z`,
    ...o,
  });

describe('imagesToKeep', () => {
  it('keeps the serving, rollback-target, rolled-back and in-flight commits and the newest N that served, per environment', () => {
    const a = r({ gitSha: sha('a'), status: 'completed' });
    const b = r({ gitSha: sha('b'), status: 'completed' });
    const c = r({ gitSha: sha('c'), status: 'rolled_back' });
    const d = r({ gitSha: sha('d'), status: 'failed' });
    const e = r({ gitSha: sha('e'), status: 'completed', previousReleaseId: b.id });
    const f = r({ gitSha: sha('f'), status: 'building' });
    const staging = r({ gitSha: sha('1'), status: 'completed', environmentId: 'env_000002' });
    const keep = imagesToKeep([a, b, c, d, e, f, staging], 1);
    expect(Object.fromEntries(keep)).toEqual({
      [sha('f')]: `in flight (release ${f.id})`,
      [sha('e')]: `serving (release ${e.id})`,
      [sha('b')]: `rollback target (release ${b.id})`,
      [sha('c')]: `rolled back, can be restored (release ${c.id})`,
      [sha('1')]: `serving (release ${staging.id})`,
    });
    // A failed build's commit and the oldest served one go; with N = 4 the served ones stay.
    expect([...imagesToKeep([a, b, c, d, e, f], 4).keys()].sort()).toEqual(
      [sha('a'), sha('b'), sha('c'), sha('e'), sha('f')].sort(),
    );
  });

  it('keeps nothing for a service without releases (a deleted one)', () => {
    expect(imagesToKeep([], 5).size).toBe(0);
  });
});

describe('the build-prune job', () => {
  const url = 'https://git.example.test/shop/web.git';
  const git: GitSource = { url, ref: 'main', subdir: '', dockerfile: 'Dockerfile', buildArgs: {} };

  it('removes the images no release needs from the node, keeps the rest, and trims the build cache to its cap', async () => {
    const h = await setup(
      { git, image: 'web-0abc12', warmSeconds: 0 },
      { maxStepAttempts: 1, build: { keepImages: 1, cacheMaxBytes: 123 } },
    );
    const files = { Dockerfile: 'FROM x\n' };
    h.deps.source = new MemorySource().addRepository(url, {
      refs: { main: sha('a') },
      commits: { [sha('a')]: files, [sha('b')]: files, [sha('c')]: files },
    });
    for (const s of ['a', 'b', 'c']) {
      await createRelease(h.deps, deployer, { serviceId: h.service.id, gitRef: sha(s) });
      await h.drain();
      h.clock.advance(1000);
      await h.retireDue();
    }
    const report = await pruneBuildImages(h.deps);
    // c serves, b is its rollback target: only a goes.
    expect(report.removed).toEqual([{ node: 'node-1', image: `web-0abc12:${sha('a')}` }]);
    const left = await h.runtime.listImages({ dockerHost }, { 'selfdevop.service': h.service.id });
    expect(left.map((i) => i.tags[0]).sort()).toEqual(
      [`web-0abc12:${sha('b')}`, `web-0abc12:${sha('c')}`].sort(),
    );
    expect(h.runtime.cachePrunes).toEqual([{ dockerHost, keepBytes: 123 }]);
    // Run again: nothing more to do.
    expect((await pruneBuildImages(h.deps)).removed).toEqual([]);
  });
});
