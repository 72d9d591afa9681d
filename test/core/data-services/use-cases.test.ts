/**
 * Data services' use cases on the in-memory store and queue: where a new one is placed,
 * who may create one, what is queued, and that its password is sealed, never returned.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { SequenceIds } from '../../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../../adapters/logger/memory.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../../adapters/vault/memory.ts';
import { dataServiceSecretContext } from '../../../core/data-services/plan.ts';
import { createDataService } from '../../../core/data-services/use-cases.ts';
import { listBackups, setBackupRetention } from '../../../core/data-services/backup-use-cases.ts';
import type { Principal } from '../../../core/deps.ts';
import type { NodeRecord, Role } from '../../../core/models.ts';
import type { EventQueue, SendOptions } from '../../../core/ports.ts';
import { aNode, aProject, anOrg } from '../../contracts/store/builders.ts';

const ctx = { requestId: null, ip: null };
let store: MemoryStore;
let vault: MemoryKeyVault;
let sent: { queue: string; payload: unknown; options?: SendOptions | undefined }[];
let deps: Parameters<typeof createDataService>[0];
let orgId: string;
let projectId: string;

const as = (role: Role): Principal => ({
  actorType: 'user',
  actorId: 'usr_1',
  userId: 'usr_1',
  orgId,
  role,
});

async function addNodes(...nodes: Partial<NodeRecord>[]): Promise<NodeRecord[]> {
  const rows = nodes.map((n) => aNode(orgId, n));
  await store.withOrg(orgId, async (r) => {
    for (const n of rows) await r.nodes.insert(n);
  });
  return rows;
}

beforeEach(async () => {
  store = new MemoryStore();
  vault = new MemoryKeyVault();
  sent = [];
  const queue: EventQueue = {
    send: async (queue, payload, options) => {
      sent.push({ queue, payload, options });
      return `m${sent.length}`;
    },
    consume: async () => async () => undefined,
    ping: async () => undefined,
  };
  const org = anOrg();
  orgId = org.id;
  const project = aProject(orgId);
  projectId = project.id;
  await store.withOrg(orgId, async (r) => {
    await r.orgs.insert(org);
    await r.projects.insert(project);
  });
  deps = {
    store,
    vault,
    queue,
    ids: new SequenceIds(),
    clock: new ManualClock(),
    logger: new MemoryLogger(),
  } as unknown as Parameters<typeof createDataService>[0];
});

describe('createDataService', () => {
  it('places on a node labelled role=data first, skips drained nodes, and honours nodeId', async () => {
    const [plain, data] = await addNodes({ name: 'a' }, { name: 'b', labels: { role: 'data' } });
    const first = await createDataService(
      deps,
      as('deployer'),
      { projectId, name: 'c1', engine: 'redis' },
      ctx,
    );
    expect(first.nodeId).toBe(data!.id);
    await store.withOrg(orgId, (r) =>
      r.nodes.insert({ ...data!, id: 'nod_drained', name: 'd', drainMode: true }),
    );
    const asked = await createDataService(
      deps,
      as('deployer'),
      { projectId, name: 'c2', engine: 'postgres', nodeId: plain!.id },
      ctx,
    );
    expect(asked.nodeId).toBe(plain!.id);
    await expect(
      createDataService(
        deps,
        as('deployer'),
        { projectId, name: 'c3', engine: 'redis', nodeId: 'nod_x' },
        ctx,
      ),
    ).rejects.toMatchObject({ code: 'node_not_found' });
  });

  it('refuses with a 400 naming nodeId when no undrained node exists', async () => {
    await addNodes({ name: 'only', drainMode: true, labels: { role: 'data' } });
    await expect(
      createDataService(deps, as('owner'), { projectId, name: 'c', engine: 'mariadb' }, ctx),
    ).rejects.toMatchObject({ kind: 'invalid', details: { field: 'nodeId' } });
    expect(sent).toEqual([]);
  });

  it('lets deployers and above create, not viewers', async () => {
    await addNodes({ name: 'n' });
    await expect(
      createDataService(deps, as('viewer'), { projectId, name: 'c', engine: 'redis' }, ctx),
    ).rejects.toMatchObject({ kind: 'forbidden' });
    await expect(
      createDataService(deps, as('deployer'), { projectId, name: 'c', engine: 'redis' }, ctx),
    ).resolves.toMatchObject({ status: 'provisioning' });
  });

  it('seals a generated password under the data service, queues one provision, and returns no secret', async () => {
    await addNodes({ name: 'n' });
    const view = await createDataService(
      deps,
      as('admin'),
      { projectId, name: 'c', engine: 'redis' },
      ctx,
    );
    expect(Object.keys(view)).not.toContain('sealedPassword');
    expect(sent).toEqual([
      {
        queue: 'data-service-work',
        payload: { orgId, dataServiceId: view.id, op: 'provision' },
        options: { idempotencyKey: `${view.id}:provision`, group: view.id, maxAttempts: 10 },
      },
    ]);
    const row = await store.withOrg(orgId, (r) => r.dataServices.get(view.id));
    const password = await vault.open(
      row!.sealedPassword,
      dataServiceSecretContext(orgId, view.id),
    );
    expect(password).toMatch(/^[A-Za-z0-9]{32}$/);
    // Bound to this data service: it does not open under another's context.
    await expect(
      vault.open(row!.sealedPassword, dataServiceSecretContext(orgId, 'dat_other')),
    ).rejects.toThrow();
    const audit = await store.withOrg(orgId, (r) => r.audit.list({ limit: 10 }));
    expect(audit.items.map((e) => [e.action, e.targetId])).toEqual([
      ['data_service.created', view.id],
    ]);
  });
});

describe('setBackupRetention', () => {
  it('keeps what it is given (other periods as they were), lists it, and refuses nonsense naming the period', async () => {
    await addNodes({ name: 'a' });
    const ds = await createDataService(
      deps,
      as('deployer'),
      { projectId, name: 'r1', engine: 'redis' },
      ctx,
    );
    const set = await setBackupRetention(deps, as('deployer'), ds.id, { daily: 7 }, ctx);
    expect(set).toEqual({ backupRetention: { daily: 7, weekly: 8, monthly: 6 } });
    const again = await setBackupRetention(deps, as('deployer'), ds.id, { monthly: 12 }, ctx);
    expect(again.backupRetention).toEqual({ daily: 7, weekly: 8, monthly: 12 });
    expect((await listBackups(deps, as('viewer'), ds.id)).backupRetention).toEqual({
      daily: 7,
      weekly: 8,
      monthly: 12,
    });
    await expect(
      setBackupRetention(deps, as('deployer'), ds.id, { weekly: -2 }, ctx),
    ).rejects.toMatchObject({ kind: 'invalid', details: { field: 'backupRetention.weekly' } });
    await expect(
      setBackupRetention(deps, as('deployer'), ds.id, { daily: 0, weekly: 0, monthly: 0 }, ctx),
    ).rejects.toMatchObject({ kind: 'invalid', details: { field: 'backupRetention' } });
    await expect(
      setBackupRetention(deps, as('viewer'), ds.id, { daily: 3 }, ctx),
    ).rejects.toMatchObject({ kind: 'forbidden' });
    await expect(
      setBackupRetention(deps, as('owner'), 'dat_nope', { daily: 3 }, ctx),
    ).rejects.toMatchObject({ code: 'data_service_not_found' });
  });
});
