import type { GitPoll, GitPollLookup, GitPollRepo } from '../../../core/ports.ts';
import type { Database } from '../../db/postgres.ts';
import { eq, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const gitPollsTable = table<GitPoll>('git_polls', [
  'serviceId',
  'polledAt',
  'sha',
  'error',
  'releaseId',
]);

export const pgGitPollRepo = (t: TenantSql): GitPollRepo => ({
  get: (serviceId) => t.one(gitPollsTable, [eq('service_id', serviceId)]),
  async record(serviceId, o) {
    // One statement, so a poll racing another leaves one row with the later outcome.
    await t.tx.query(
      `insert into git_polls (org_id, service_id, polled_at, error, sha, release_id)
       values ($1, $2, $3, $4, $5, $6)
       on conflict (org_id, service_id) do update set polled_at = excluded.polled_at,
         error = excluded.error, sha = coalesce(excluded.sha, git_polls.sha),
         release_id = coalesce(excluded.release_id, git_polls.release_id)`,
      [t.orgId, serviceId, o.polledAt, o.error, o.sha ?? null, o.releaseId ?? null],
    );
  },
  async want(serviceId, sha) {
    await t.tx.query(
      `insert into git_polls (org_id, service_id, wanted_sha) values ($1, $2, $3)
       on conflict (org_id, service_id) do update set wanted_sha = excluded.wanted_sha`,
      [t.orgId, serviceId, sha],
    );
  },
  async takeWanted(serviceId) {
    // FOR UPDATE makes this a compare-and-set, as the push hooks' slot.
    const r = await t.tx.query(
      `with taken as (
         select service_id, wanted_sha from git_polls
         where org_id = $1 and service_id = $2 and wanted_sha is not null for update)
       update git_polls g set wanted_sha = null from taken
       where g.org_id = $1 and g.service_id = taken.service_id
       returning taken.wanted_sha`,
      [t.orgId, serviceId],
    );
    const row = r.rows[0] as { wanted_sha: string } | undefined;
    return row?.wanted_sha ?? null;
  },
  async putBackWanted(serviceId, sha) {
    await t.tx.query(
      'update git_polls set wanted_sha = $3 where org_id = $1 and service_id = $2 and wanted_sha is null',
      [t.orgId, serviceId, sha],
    );
  },
});

/** Before any org is known, through the security-definer function of migration 0036. */
export const pgGitPollLookup = (db: Database): GitPollLookup => ({
  duePolls: async (now, limit) => {
    const r = await db.query('select org_id, service_id from selfdevop_git_polls_due($1, $2)', [
      now,
      limit,
    ]);
    return r.rows.map((row) => ({ orgId: String(row.org_id), serviceId: String(row.service_id) }));
  },
});
