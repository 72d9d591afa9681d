/**
 * What a runtime could not do as a spec asked reaches the release's log: a Swarm target
 * answers a warning when an image has no shell to read its environment from a secret (the
 * environment then is in the service's spec). The core only relays the runtime's words.
 */
import { describe, expect, it } from 'vitest';
import type { ContainerRuntime } from '../../../core/ports.ts';
import { setup, type Harness } from './harness.ts';

const said = 'the environment is in the spec in clear text: the image has no /bin/sh';

/** The harness's runtime, answering `said` on every start and one-off. */
function warning(h: Harness): void {
  const runtime = h.runtime as ContainerRuntime;
  const start = runtime.start.bind(runtime);
  const runOnce = runtime.runOnce.bind(runtime);
  runtime.start = async (t, spec) => ({ ...(await start(t, spec)), warnings: [said] });
  runtime.runOnce = async (t, spec, ms, onLine) => ({
    ...(await runOnce(t, spec, ms, onLine)),
    warnings: [said],
  });
}

const logOf = (h: Harness, id: string) =>
  h.repos(async (r) => (await r.releaseLogs.list(id, 0, 1000)).map((l) => l.line));

describe("a runtime's warnings on the release's log", () => {
  it("says a warning of the replicas once for the release, and the migration's once", async () => {
    const h = await setup({ replicas: 3, maxSurge: 3, migrateCommand: '/bin/migrate' });
    warning(h);
    const release = await h.deploy('shop/web:1');
    expect(release.status).toBe('completed');
    const lines = await logOf(h, release.id);
    expect(lines.filter((l) => l === `warning: ${said}`)).toHaveLength(2);
    // After the replicas' own lines, before the migration.
    const first = lines.indexOf(`warning: ${said}`);
    expect(lines.slice(0, first).filter((l) => l.startsWith('started '))).toHaveLength(3);
    expect(lines.indexOf('running migration: /bin/migrate')).toBeGreaterThan(first);
  });

  it('says nothing when the runtime has nothing to say', async () => {
    const h = await setup({ replicas: 2 });
    const release = await h.deploy('shop/web:1');
    expect((await logOf(h, release.id)).filter((l) => l.startsWith('warning:'))).toEqual([]);
  });
});
