/**
 * Stuck backups are swept, for real: backup rows in the real PostgreSQL left `running` by a
 * worker that "died" mid-dump (a real `putStream` into the local object store whose source
 * never ends, so its temporary file stays, and a dump object that reached its key), then the
 * workers' `backup-sweep` job from the one scheduled-job table. Past start + timeout + grace
 * the row is `failed` with its reason, the partial object is gone, `backup.failed` is in the
 * audit trail (what webhooks, notifications and the failures-in-a-row alert read) and never
 * a success; a row still inside its bound, and one that finished meanwhile, are untouched.
 * The same job fails a move whose worker stopped beating (links back, half-made server removed).
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalFsObjectStore } from '../../adapters/objects/local-fs.ts';
import { newBackupRow } from '../../core/data-services/backup-work.ts';
import { staleHeartbeatMs } from '../../core/data-services/move.ts';
import { dataServiceSecretContext } from '../../core/data-services/plan.ts';
import {
  backupSweepSchedule,
  defaultBackupTimeoutMs,
  stuckBackupGraceMs,
} from '../../core/data-services/sweep.ts';
import type { DataService, DataServiceBackup } from '../../core/models.ts';
import { scheduledJobs, type WorkerSystem } from '../../core/queues.ts';
import { backupFailuresInARow } from '../../core/stats/collect.ts';
import { aDataServiceLink, aDataServiceMove, aService } from '../contracts/store/builders.ts';
import { startSelfhostApi } from '../support/api.ts';
import type { Requester } from '../support/http.ts';

describe('the backup sweep fails backups a dead worker left running (real PostgreSQL and files)', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let req: Requester;
  let token: string;
  let orgId: string;
  let ds: DataService;
  const h = () => ({ token, headers: { 'x-org-id': orgId } });
  const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
  const bound = defaultBackupTimeoutMs + stuckBackupGraceMs;

  beforeAll(async () => {
    api = await startSelfhostApi();
    req = api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'sweep@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    const projectId = (await req('POST', '/api/projects', { token, body: { name: 'shop' } })).body
      .id;
    const node = await req('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
    const now = new Date().toISOString();
    const { vault } = api.system.release;
    ds = {
      id: 'dat_sweep1',
      orgId,
      projectId,
      name: 'orders',
      engine: 'mariadb',
      version: '10.11',
      nodeId: node.body.id,
      status: 'ready',
      error: null,
      settings: {},
      sealedPassword: await vault.seal('pw', dataServiceSecretContext(orgId, 'dat_sweep1')),
      removeVolume: false,
      backupSchedule: '0 3 * * *',
      createdAt: now,
      updatedAt: now,
    };
    await api.system.release.store.withOrg(orgId, (r) => r.dataServices.insert(ds));
  }, 120_000);

  afterAll(async () => {
    await api?.close();
  });

  /** A backup row as the worker makes it, `running` since `startedAt`. */
  async function runningRow(startedAt: string): Promise<DataServiceBackup> {
    const d = api.system.release;
    const row = await newBackupRow({ ...d, backupCodec: d.backupCodec! }, ds, 'schedule');
    const stuck = { ...row, startedAt };
    await d.store.withOrg(orgId, (r) => r.dataServiceBackups.insert(stuck));
    return stuck;
  }

  // The jobs as the self-hosted worker builds them (only the release engine's ports matter here).
  const jobs = () =>
    scheduledJobs({ release: api.system.release, logger: api.system.logger } as WorkerSystem);
  const sweep = () =>
    jobs()
      .find((j) => j.name === backupSweepSchedule)!
      .run();

  const objects = () => new LocalFsObjectStore(api.objectsDir);
  const tmpFiles = async () =>
    (await readdir(path.join(api.objectsDir, 'tmp')).catch(() => [] as string[])).filter((n) =>
      n.endsWith('.tmp'),
    );

  it('is one of the scheduled jobs, every five minutes', () => {
    const job = jobs().find((j) => j.name === backupSweepSchedule);
    expect(job?.cron).toBe('*/5 * * * *');
  });

  it('marks a crashed backup failed with its reason, removes its partial objects and audits backup.failed', async () => {
    const store = objects();
    const crashed = await runningRow(ago(bound + 60_000));
    // The dead worker's upload: some bytes written, then its source stopped for good.
    let wrote!: () => void;
    const written = new Promise<void>((r) => (wrote = r));
    void store
      .putStream(crashed.objectKey, {
        async *[Symbol.asyncIterator]() {
          yield new Uint8Array(64 * 1024).fill(7);
          wrote();
          await new Promise(() => undefined); // the process "died" here
        },
      })
      .catch(() => undefined);
    await written;
    const partial = await tmpFiles();
    expect(partial.length).toBeGreaterThan(0);
    // And one that got as far as its key (the manifest never came).
    const other = await runningRow(ago(bound + 120_000));
    await store.put(other.objectKey, new Uint8Array(1024));

    const young = await runningRow(ago(bound - 5 * 60_000));
    const done = await runningRow(ago(bound + 60_000));
    await api.system.release.store.withOrg(orgId, (r) =>
      r.dataServiceBackups.update(done.id, { status: 'completed', finishedAt: ago(bound) }),
    );

    await sweep();

    const list = await req('GET', `/api/data-services/${ds.id}/backups`, h());
    expect(list.status, list.text).toBe(200);
    const byId = new Map(
      (list.body.items as { id: string; status: string; error: string | null }[]).map((b) => [
        b.id,
        b,
      ]),
    );
    for (const id of [crashed.id, other.id]) {
      expect(byId.get(id)?.status).toBe('failed');
      expect(byId.get(id)?.error).toMatch(
        /the worker running this backup stopped .* past its 120 min timeout\); marked failed by the backup sweep/,
      );
    }
    expect(byId.get(young.id)?.status).toBe('running');
    expect(byId.get(done.id)?.status).toBe('completed');
    // The partial upload and the stored dump are gone; the live write's temp file would not be.
    expect(await tmpFiles()).toEqual([]);
    expect(await store.get(other.objectKey)).toBeNull();
    expect(await store.get(crashed.objectKey)).toBeNull();

    const audit = await req(
      'GET',
      `/api/audit-events?action=backup.failed&targetId=${ds.id}&limit=50`,
      h(),
    );
    const failed = (audit.body.items as { data: Record<string, unknown> }[]).map((e) => e.data);
    expect(failed.map((d) => d.backupId).sort()).toEqual([crashed.id, other.id].sort());
    expect(failed[0]).toMatchObject({ swept: true, trigger: 'schedule' });
    const completed = await req(
      'GET',
      `/api/audit-events?action=backup.completed&targetId=${ds.id}`,
      h(),
    );
    expect(completed.body.items).toEqual([]);
    // The backup_failed alert counts them like any failed backups (the newest rows here).
    const rows = await api.system.release.store.withOrg(orgId, (r) =>
      r.dataServiceBackups.list(ds.id),
    );
    expect(backupFailuresInARow(rows.filter((r) => r.id === crashed.id || r.id === other.id))).toBe(
      2,
    );

    // A second sweep finds nothing more to fail: the audit says it once.
    await sweep();
    const again = await req(
      'GET',
      `/api/audit-events?action=backup.failed&targetId=${ds.id}&limit=50`,
      h(),
    );
    expect(again.body.items).toHaveLength(2);
  });

  it('fails a drill a dead worker left running (drill.failed), keeping the completed backup', async () => {
    const row = await runningRow(ago(bound * 2));
    await api.system.release.store.withOrg(orgId, (r) =>
      r.dataServiceBackups.update(row.id, {
        status: 'completed',
        finishedAt: ago(bound * 2),
        drillStatus: 'running',
        drilledAt: ago(bound + 60_000),
      }),
    );
    await sweep();
    const drills = await req('GET', `/api/data-services/${ds.id}/drills`, h());
    const drill = (drills.body.items as { backupId: string; status: string; error: string }[]).find(
      (d) => d.backupId === row.id,
    );
    expect(drill?.status).toBe('failed');
    expect(drill?.error).toMatch(/the worker running this drill stopped/);
    const audit = await req(
      'GET',
      `/api/audit-events?action=drill.failed&targetId=${ds.id}&limit=50`,
      h(),
    );
    expect(audit.body.items.map((e: { data: { backupId: string } }) => e.data.backupId)).toContain(
      row.id,
    );
    const b = await api.system.release.store.withOrg(orgId, (r) =>
      r.dataServiceBackups.get(row.id),
    );
    expect(b?.status).toBe('completed');
  });

  it('fails a move whose worker stopped beating: links back on the shared copy, the half-made server removed, move_failed audited', async () => {
    const d = api.system.release;
    const server: DataService = { ...ds, id: 'dat_sweepsrv', name: 'main', shareable: true };
    const shared: DataService = {
      ...ds,
      id: 'dat_sweepdb',
      name: 'shop-db',
      sharedServerId: server.id,
    };
    const half: DataService = {
      ...ds,
      id: 'dat_sweephalf',
      name: 'shop-db-dedicated',
      status: 'ready',
    };
    const service = aService(orgId, ds.projectId);
    const lastBeat = ago(staleHeartbeatMs + 60_000);
    await d.store.withOrg(orgId, async (r) => {
      await r.services.insert(service);
      for (const x of [server, shared, half]) await r.dataServices.insert(x);
      // The dead worker had re-linked (step redeploy) and queued no release.
      await r.dataServiceLinks.insert(
        aDataServiceLink(orgId, half.id, service.id, { envName: 'DATABASE_URL' }),
      );
      await r.dataServices.update(shared.id, {
        move: aDataServiceMove({
          targetId: half.id,
          step: 'redeploy',
          at: ago(staleHeartbeatMs + 120_000),
          heartbeatAt: lastBeat,
        }),
      });
    });
    // A live move on another database of the same server is left alone.
    const live: DataService = {
      ...ds,
      id: 'dat_sweeplive',
      name: 'blog-db',
      sharedServerId: server.id,
      move: aDataServiceMove({ at: ago(60_000), heartbeatAt: ago(30_000) }),
    };
    await d.store.withOrg(orgId, (r) => r.dataServices.insert(live));

    await sweep();

    const got = await req('GET', `/api/data-services/${shared.id}`, h());
    expect(got.status, got.text).toBe(200);
    expect(got.body.move).toMatchObject({ status: 'failed', step: 'redeploy' });
    expect(got.body.move.error).toBe(
      `move failed at step redeploy: worker stopped (no heartbeat since ${lastBeat}); marked failed by the sweep`,
    );
    expect(
      got.body.links.map((l: { serviceId: string; envName: string }) => [l.serviceId, l.envName]),
    ).toEqual([[service.id, 'DATABASE_URL']]);
    const removed = await d.store.withOrg(orgId, (r) => r.dataServices.get(half.id));
    expect(removed).toMatchObject({ status: 'deleting', removeVolume: true });
    expect(
      await d.store.withOrg(orgId, (r) => r.dataServiceLinks.list({ dataServiceId: half.id })),
    ).toEqual([]);
    const audit = await req(
      'GET',
      `/api/audit-events?action=data_service.move_failed&targetId=${shared.id}`,
      h(),
    );
    expect(audit.body.items).toHaveLength(1);
    expect(audit.body.items[0].data).toMatchObject({
      step: 'redeploy',
      swept: true,
      removed: { id: half.id, name: 'shop-db-dedicated' },
      linksRestored: ['DATABASE_URL'],
    });
    expect((await d.store.withOrg(orgId, (r) => r.dataServices.get(live.id)))!.move!.status).toBe(
      'moving',
    );

    // Settled once.
    await sweep();
    const again = await req(
      'GET',
      `/api/audit-events?action=data_service.move_failed&targetId=${shared.id}`,
      h(),
    );
    expect(again.body.items).toHaveLength(1);
  });
});
