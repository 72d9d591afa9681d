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
import {
  createDataService,
  deleteDataService,
  linkDataService,
} from '../../../core/data-services/use-cases.ts';
import { listBackups, setBackupRetention } from '../../../core/data-services/backup-use-cases.ts';
import type { Principal } from '../../../core/deps.ts';
import type { NodeRecord, Role } from '../../../core/models.ts';
import type { EventQueue, SendOptions } from '../../../core/ports.ts';
import { aNode, aProject, aService, anOrg } from '../../contracts/store/builders.ts';

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

describe('shared servers', () => {
  /** A shareable server made ready (the worker's part is the integration test's). */
  async function readyServer(engine: 'mariadb' | 'postgres' | 'redis', name = 'main') {
    await addNodes({ name: `n-${name}` });
    const s = await createDataService(
      deps,
      as('owner'),
      { projectId, name, engine, ...(engine === 'redis' ? {} : { shareable: true }) },
      ctx,
    );
    await store.withOrg(orgId, (r) => r.dataServices.update(s.id, { status: 'ready' }));
    return s;
  }

  it('makes a database and user on the server: its node, version and host, its own sealed password', async () => {
    const server = await readyServer('mariadb');
    expect(server).toMatchObject({ shareable: true, mode: 'dedicated', database: 'app' });
    const db = await createDataService(
      deps,
      as('deployer'),
      { projectId, name: 'shop-db', engine: 'mariadb', sharedServerId: server.id },
      ctx,
    );
    expect(db).toMatchObject({
      mode: 'shared',
      sharedServerId: server.id,
      shareable: false,
      nodeId: server.nodeId,
      version: server.version,
      host: server.host,
      volume: server.volume,
      status: 'provisioning',
    });
    expect(db.database).toBe(`sdo_${db.id.toLowerCase()}`);
    expect(db.user).toBe(db.database);
    const [row, srv] = await store.withOrg(orgId, (r) =>
      Promise.all([r.dataServices.get(db.id), r.dataServices.get(server.id)]),
    );
    expect(row!.sealedPassword).not.toBe(srv!.sealedPassword);
    expect(await vault.open(row!.sealedPassword, dataServiceSecretContext(orgId, db.id))).toMatch(
      /^[A-Za-z0-9]{10,}$/,
    );
    expect(sent.at(-1)?.payload).toEqual({ orgId, dataServiceId: db.id, op: 'provision' });
  });

  it('refuses shared Redis, non-shareable or unready servers, other projects and mismatches, with the field named', async () => {
    const server = await readyServer('postgres');
    const plainRedis = await readyServer('redis', 'cache');
    const other = aProject(orgId, { name: 'blog' });
    await store.withOrg(orgId, (r) => r.projects.insert(other));
    const attempt = (input: Record<string, unknown>) =>
      createDataService(
        deps,
        as('owner'),
        { projectId, name: 'x', engine: 'postgres', ...input } as never,
        ctx,
      );
    await expect(attempt({ engine: 'redis', shareable: true })).rejects.toMatchObject({
      kind: 'invalid',
      details: { field: 'shareable' },
    });
    await expect(attempt({ engine: 'redis', sharedServerId: plainRedis.id })).rejects.toMatchObject(
      { kind: 'invalid', details: { field: 'sharedServerId' } },
    );
    await expect(
      attempt({ sharedServerId: plainRedis.id, engine: 'mariadb' }),
    ).rejects.toMatchObject({ kind: 'invalid', details: { field: 'sharedServerId' } });
    await expect(attempt({ sharedServerId: server.id, engine: 'mariadb' })).rejects.toMatchObject({
      kind: 'invalid',
      details: { field: 'engine' },
    });
    await expect(attempt({ sharedServerId: server.id, version: '16' })).rejects.toMatchObject({
      kind: 'invalid',
    });
    await expect(attempt({ sharedServerId: server.id, shareable: true })).rejects.toMatchObject({
      kind: 'invalid',
      details: { field: 'shareable' },
    });
    await expect(attempt({ sharedServerId: server.id, projectId: other.id })).rejects.toMatchObject(
      { kind: 'invalid', details: { field: 'sharedServerId' } },
    );
    await expect(attempt({ sharedServerId: 'dat_nope' })).rejects.toMatchObject({
      code: 'data_service_not_found',
    });
    await store.withOrg(orgId, (r) => r.dataServices.update(server.id, { status: 'provisioning' }));
    await expect(attempt({ sharedServerId: server.id })).rejects.toMatchObject({
      code: 'data_service_not_ready',
    });
  });

  it('never links the server itself, and keeps it while it holds databases', async () => {
    const server = await readyServer('mariadb');
    const db = await createDataService(
      deps,
      as('owner'),
      { projectId, name: 'shop-db', engine: 'mariadb', sharedServerId: server.id },
      ctx,
    );
    const service = aService(orgId, projectId);
    await store.withOrg(orgId, (r) => r.services.insert(service));
    await expect(
      linkDataService(deps, as('owner'), server.id, { serviceId: service.id }, ctx),
    ).rejects.toMatchObject({ code: 'data_service_shareable' });
    await expect(
      linkDataService(deps, as('owner'), db.id, { serviceId: service.id }, ctx),
    ).resolves.toMatchObject({ envName: 'DATABASE_URL' });
    await expect(
      deleteDataService(
        deps,
        as('owner'),
        server.id,
        { confirm: server.name, volume: 'remove' },
        ctx,
      ),
    ).rejects.toMatchObject({
      code: 'data_service_has_databases',
      details: { databases: ['shop-db'] },
    });
  });
});
