/**
 * Deleting a node on real Docker Engines (../shared/ci/multi-node.sh nodes 4–6, the
 * node-loss range): the org's stopped containers leave a reachable node's engine with it,
 * while a running one and another org's stay; a lost node's engine, which does not answer,
 * is tried once and the delete goes on, its failure audited. The node kept off (killed)
 * boots again in afterAll.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SystemClock } from '../../adapters/clock/system.ts';
import { MemoryEdgeRouter } from '../../adapters/edge/memory.ts';
import { SequenceIds } from '../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { HttpHealthProbe } from '../../adapters/probe/http.ts';
import { MemoryQueue } from '../../adapters/queue/memory.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { MemoryStore } from '../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../adapters/vault/memory.ts';
import { deleteNode } from '../../core/nodes/delete.ts';
import type { ReleaseDeps } from '../../core/releases/engine.ts';
import { aNode, aProject, anEnvironment, anOrg } from '../core/releases/builders.ts';
import { deployer, orgId } from '../core/releases/harness.ts';
import { isCi } from '../support/services.ts';

const script = fileURLToPath(new URL('../../../shared/ci/multi-node.sh', import.meta.url));
const socketOf = (i: number) => `/run/sdo-node${i}/docker.sock`;
const up = [4, 6].every((i) => existsSync(socketOf(i))) && existsSync(script);
if (!up) {
  const why = 'engines 4 and 6 are not up: run ../shared/ci/multi-node.sh up 9 with MN_IMAGES';
  if (isCi) throw new Error(`CI must not skip: ${why}`);
  console.warn(`\n*** SKIPPING node-delete suite: ${why} ***\n`);
}
const run = promisify(execFile);
const docker = (i: number, ...args: string[]) =>
  run('docker', ['-H', `unix://${socketOf(i)}`, ...args], { timeout: 60_000 });
const admin = { ...deployer, role: 'admin' as const };

describe.skipIf(!up)('deleting a node on real engines', () => {
  const tag = randomBytes(3).toString('hex');
  const otherOrg = `org_other${tag}`;
  let deps: ReleaseDeps;
  let killed = false;
  const audit = (action: string) =>
    deps.store.withOrg(orgId, async (x) => (await x.audit.list({ limit: 20 }, { action })).items);
  /** The names of containers on engine i labelled with `org`. */
  const namesOn = async (i: number, org: string) =>
    (
      await new DockerRuntime().list(
        { dockerHost: `unix://${socketOf(i)}` },
        { 'selfdevop.org': org },
      )
    )
      .map((c) => c.name.replace(/^\//, ''))
      .sort();

  beforeAll(async () => {
    deps = {
      store: new MemoryStore(),
      runtime: new DockerRuntime({ requestTimeoutMs: 10_000 }),
      edge: new MemoryEdgeRouter(),
      queue: new MemoryQueue({ retryDelaySeconds: 0, pollIntervalMs: 5 }),
      vault: new MemoryKeyVault(),
      probe: new HttpHealthProbe(),
      clock: new SystemClock(),
      ids: new SequenceIds(),
      logger: new MemoryLogger(),
      config: { edgeDomain: 'apps.example.test', migrationTimeoutMs: 20_000, maxStepAttempts: 3 },
    };
    await deps.store.withOrg(orgId, async (r) => {
      await r.orgs.insert(anOrg());
      await r.projects.insert(aProject());
      await r.environments.insert(anEnvironment());
      for (const i of [4, 6])
        await r.nodes.insert(
          aNode({
            id: `node_0000d${i}`,
            name: `sdo-node${i}`,
            dockerHost: `unix://${socketOf(i)}`,
            address: `10.213.0.1${i}`,
          }),
        );
    });
  });

  afterAll(async () => {
    if (killed)
      await run('bash', [script, 'start', '6'], { timeout: 120_000 }).catch(() => undefined);
    for (const i of [4, 6])
      for (const org of [orgId, otherOrg])
        for (const name of await namesOn(i, org).catch(() => []))
          if (name.includes(tag)) await docker(i, 'rm', '-f', name).catch(() => undefined);
  }, 180_000);

  it('removes the org stopped containers from a reachable engine, and nothing else', async () => {
    const label = (org: string) => ['--label', `selfdevop.org=${org}`];
    await docker(4, 'create', '--name', `sdo-old-${tag}`, ...label(orgId), 'selfdevop-test/app:v1');
    await docker(
      4,
      'run',
      '-d',
      '--name',
      `sdo-exited-${tag}`,
      ...label(orgId),
      'selfdevop-test/app:v1',
      'true',
    );
    await docker(
      4,
      'run',
      '-d',
      '--name',
      `sdo-running-${tag}`,
      ...label(orgId),
      'selfdevop-test/app:v1',
    );
    await docker(
      4,
      'create',
      '--name',
      `sdo-theirs-${tag}`,
      ...label(otherOrg),
      'selfdevop-test/app:v1',
    );
    const result = await deleteNode(deps, admin, 'node_0000d4', {}, null);
    expect(result.containers.removed.filter((n) => n.includes(tag)).sort()).toEqual([
      `sdo-exited-${tag}`,
      `sdo-old-${tag}`,
    ]);
    expect(result.containers.kept).toContain(`sdo-running-${tag}`);
    expect(result.containers.errors).toEqual([]);
    expect((await namesOn(4, orgId)).filter((n) => n.includes(tag))).toEqual([
      `sdo-running-${tag}`,
    ]);
    expect(await namesOn(4, otherOrg)).toContain(`sdo-theirs-${tag}`);
    expect(await audit('node.containers_removed')).toMatchObject([
      { targetId: 'node_0000d4', data: { removed: result.containers.removed } },
    ]);
  }, 120_000);

  it('deletes a lost node whose engine does not answer, and audits what it left', async () => {
    await docker(
      6,
      'create',
      '--name',
      `sdo-left-${tag}`,
      '--label',
      `selfdevop.org=${orgId}`,
      'selfdevop-test/app:v1',
    );
    killed = true;
    await run('bash', [script, 'kill', '6'], { timeout: 60_000 });
    await deps.store.withOrg(orgId, (r) =>
      r.nodes.recordCheck('node_0000d6', 'unknown', {
        reachability: 'lost',
        reachabilitySince: new Date().toISOString(),
        lastSeenAt: null,
        missedChecks: 3,
      }),
    );
    const result = await deleteNode(deps, admin, 'node_0000d6', {}, null);
    expect(result.containers.removed).toEqual([]);
    expect(result.containers.errors).toEqual([
      expect.stringMatching(/^the engine did not answer: /),
    ]);
    expect(await deps.store.withOrg(orgId, (r) => r.nodes.get('node_0000d6'))).toBeNull();
    expect(await audit('node.containers_removed')).toContainEqual(
      expect.objectContaining({
        targetId: 'node_0000d6',
        data: expect.objectContaining({ reachability: 'lost', errors: result.containers.errors }),
      }),
    );
    // Back, the engine still holds it: what a lost node's delete could not reach stays.
    await run('bash', [script, 'start', '6'], { timeout: 120_000 });
    killed = false;
    expect(await namesOn(6, orgId)).toContain(`sdo-left-${tag}`);
  }, 240_000);
});
