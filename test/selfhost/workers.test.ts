/**
 * The self-hosted workers consume the one queue table (core/queues.ts) that the SQS worker
 * Lambda consumes: every worker queue, and each scheduled job on pg-boss's cron, sent to a
 * queue named after it.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { domainSweepCron, domainSweepSchedule } from '../../core/domains/sweep.ts';
import { edgeRebuildJob, workerQueueNames } from '../../core/queues.ts';
import { buildPruneCron, buildPruneSchedule } from '../../core/builds/prune.ts';
import { backupSweepCron, backupSweepSchedule } from '../../core/data-services/sweep.ts';
import { gitPollCron, gitPollSchedule } from '../../core/builds/poll.ts';
import { releaseSweepCron, releaseSweepSchedule } from '../../core/releases/sweep.ts';
import { startSelfhostApi } from '../support/api.ts';
import { aNode, anOrg } from '../contracts/store/builders.ts';

describe('self-hosted workers', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  beforeAll(async () => {
    api = await startSelfhostApi({ workers: true });
  }, 60_000);
  afterAll(async () => api?.close());

  it('consume every queue of the table and schedule every job of it', async () => {
    const db = new pg.Client({ connectionString: api.databaseUrl });
    await db.connect();
    try {
      // Nothing is sent at start: a queue exists because the workers consume it (or pg-boss's own, or a dead-letter queue).
      const all = (await db.query<{ name: string }>('select name from pgboss.queue')).rows.map(
        (r) => r.name,
      );
      const queues = all.filter((n) => !n.startsWith('__pgboss') && !n.endsWith('__dlq'));
      // Written out, not derived from scheduledJobs(): a job the composition fails to wire
      // (edge-rebuild without the route catalog, issue 11) must fail here.
      const jobs = [
        { name: backupSweepSchedule, cron: backupSweepCron },
        { name: buildPruneSchedule, cron: buildPruneCron },
        { name: domainSweepSchedule, cron: domainSweepCron },
        { name: edgeRebuildJob, cron: '* * * * *' },
        { name: gitPollSchedule, cron: gitPollCron },
        { name: releaseSweepSchedule, cron: releaseSweepCron },
      ];
      expect(queues.sort()).toEqual([...workerQueueNames, ...jobs.map((j) => j.name)].sort());
      const schedules = (
        await db.query<{ name: string; key: string; cron: string }>(
          'select name, key, cron from pgboss.schedule',
        )
      ).rows;
      expect(schedules.sort((a, b) => a.name.localeCompare(b.name))).toEqual(
        jobs.map((j) => ({ name: j.name, key: j.name, cron: j.cron })),
      );
    } finally {
      await db.end();
    }
  });

  it("checks every node's engine on a timer: a gone engine is lost (node.lost), a live one reachable", async () => {
    const store = api.system.release.store;
    const org = anOrg();
    const live = aNode(org.id, { dockerHost: 'unix:///var/run/docker.sock' });
    // A socket nobody listens on: the engine of a node that lost power.
    const gone = aNode(org.id, { dockerHost: 'unix:///run/sdo-no-such-engine/docker.sock' });
    await store.withOrg(org.id, async (r) => {
      await r.orgs.insert(org);
      await r.nodes.insert(live);
      await r.nodes.insert(gone);
    });
    const read = () =>
      store.withOrg(org.id, async (r) => ({
        live: (await r.nodes.get(live.id))!,
        gone: (await r.nodes.get(gone.id))!,
        events: (await r.audit.list({ limit: 10 }, { action: 'node.lost' })).items,
      }));
    let now = await read();
    for (let i = 0; i < 200 && now.events.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      now = await read();
    }
    expect(now.gone).toMatchObject({ reachability: 'lost', lastSeenAt: null });
    expect(now.live).toMatchObject({ reachability: 'reachable', missedChecks: 0 });
    expect(now.live.lastSeenAt).not.toBeNull();
    expect(now.events).toMatchObject([
      { actorType: 'system', actorId: 'node-checks', targetId: gone.id, data: { releases: [] } },
    ]);
  }, 60_000);
});
