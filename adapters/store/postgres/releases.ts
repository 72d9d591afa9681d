import { NotFound, ReleaseAlreadyInFlight } from '../../../core/errors.ts';
import {
  finishedReleaseStatuses,
  type Release,
  type ReleaseLogLine,
  type ReleaseStep,
} from '../../../core/models.ts';
import type {
  ReleaseLogRepo,
  ReleaseLookup,
  ReleaseRepo,
  ReleaseStepRepo,
} from '../../../core/ports.ts';
import type { SqlClient } from '../../db/postgres.ts';
import { clampLimit, defaultLogLines, maxLogLines } from '../page.ts';
import { guardedWrite } from './constraints.ts';
import {
  eq,
  fromRow,
  insertSql,
  selectSql,
  sqlList,
  table,
  updateSql,
  upsertSql,
  valuesOf,
} from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const releasesTable = table<Release>('releases', [
  'id',
  'orgId',
  'serviceId',
  'environmentId',
  'image',
  'imageDigest',
  'gitSha',
  'gitRef',
  'status',
  'previousReleaseId',
  'nodeId',
  'containerId',
  'upstream',
  'replicaSet',
  'error',
  'createdAt',
  'updatedAt',
  'finishedAt',
]);

export const releaseStepsTable = table<ReleaseStep>('release_steps', [
  'releaseId',
  'orgId',
  'name',
  'status',
  'attempt',
  'startedAt',
  'finishedAt',
  'error',
]);

export const releaseLogsTable = table<ReleaseLogLine>('release_logs', [
  'releaseId',
  'seq',
  'at',
  'stream',
  'line',
]);

/** The predicate of migration 0001's `releases_one_in_flight` index, from the core's set. */
export const inFlightSql = `status not in (${sqlList(finishedReleaseStatuses)})`;

export function pgReleaseRepo(t: TenantSql): ReleaseRepo {
  const repo: ReleaseRepo = {
    insert: async (r) => {
      // The partial unique index decides races; on a conflict, name the release holding
      // the service environment. If it finished in between, the insert is tried again.
      for (let attempt = 1; ; attempt++) {
        let holderGone = false;
        try {
          await guardedWrite(
            t.tx,
            insertSql(releasesTable),
            valuesOf(releasesTable, r),
            r as unknown as Record<string, unknown>,
            async (e) => {
              if (e.code !== '23505' || e.constraint !== 'releases_one_in_flight') return null;
              const holder = await repo.inFlight(r.serviceId, r.environmentId);
              if (holder) return new ReleaseAlreadyInFlight(holder.id);
              holderGone = true;
              return e as Error;
            },
          );
          return;
        } catch (e) {
          if (!holderGone || attempt >= 3) throw e;
        }
      }
    },
    get: (id) => t.one(releasesTable, [eq('id', id), t.org()]),
    list: (page, filter) =>
      t.page(
        releasesTable,
        t.filterConditions(filter, { project: 'viaService', service: true, environment: true }),
        page,
      ),
    transition: async (id, from, patch) => {
      const conditions = [eq('id', id), t.org(), eq('status', from)];
      const q = updateSql(releasesTable, patch, conditions);
      if (!q) return false;
      const count = await guardedWrite(t.tx, q.text, q.values, { ...patch, id }, async (e) => {
        if (e.constraint !== 'releases_one_in_flight') return null;
        const current = await repo.get(id);
        const holder = current
          ? await repo.inFlight(current.serviceId, current.environmentId)
          : null;
        return holder ? new ReleaseAlreadyInFlight(holder.id) : null;
      });
      return count > 0;
    },
    update: async (id, patch) => {
      await t.updateById(releasesTable, 'release', id, patch, ['id', 'orgId', 'status']);
    },
    inFlight: async (serviceId, environmentId) => {
      const r = await t.tx.query(
        `${selectSql(releasesTable)} where service_id = $1 and environment_id = $2 and org_id = $3 and ${inFlightSql} order by id desc limit 1`,
        [serviceId, environmentId, t.orgId],
      );
      return r.rows[0] ? fromRow(releasesTable, r.rows[0]) : null;
    },
    latest: async (serviceId, environmentId, statuses) => {
      const r = await t.tx.query(
        `${selectSql(releasesTable)} where service_id = $1 and environment_id = $2 and org_id = $3 and status = any($4::text[]) order by id desc limit 1`,
        [serviceId, environmentId, t.orgId, statuses],
      );
      return r.rows[0] ? fromRow(releasesTable, r.rows[0]) : null;
    },
    latestOfEach: async (statuses) => {
      // Descending on every column, so releases_org_service_env_idx is read backwards.
      const r = await t.tx.query(
        `select distinct on (service_id, environment_id) ${selectSql(releasesTable).replace(/^select /, '')} where org_id = $1 and status = any($2::text[]) order by service_id desc, environment_id desc, id desc`,
        [t.orgId, statuses],
      );
      return r.rows.map((row) => fromRow(releasesTable, row));
    },
  };
  return repo;
}

export const pgReleaseStepRepo = (t: TenantSql): ReleaseStepRepo => ({
  upsert: (step) =>
    guardedWrite(
      t.tx,
      upsertSql(releaseStepsTable, ['releaseId', 'name']),
      valuesOf(releaseStepsTable, step),
      step as unknown as Record<string, unknown>,
    ).then(() => undefined),
  list: (releaseId) =>
    t.all(releaseStepsTable, [eq('release_id', releaseId), t.org()], 'started_at, name'),
});

export const pgReleaseLogRepo = (t: TenantSql): ReleaseLogRepo => ({
  append: async (releaseId, lines) => {
    if (lines.length === 0) return;
    // Reserving the numbers bumps a counter on the release row; its row lock orders
    // concurrent appenders, so each gets its own contiguous, increasing range.
    const r = await t.tx.query<{ last: number }>(
      'update releases set log_seq = log_seq + $1 where id = $2 and org_id = $3 returning log_seq as last',
      [lines.length, releaseId, t.orgId],
    );
    const last = r.rows[0]?.last;
    if (last === undefined) throw new NotFound('release', releaseId);
    const first = last - lines.length + 1;
    await t.tx.query(
      `insert into release_logs (release_id, org_id, seq, at, stream, line)
       select $1, $2, u.seq, u.at, u.stream, u.line
       from unnest($3::integer[], $4::timestamptz[], $5::text[], $6::text[]) as u(seq, at, stream, line)`,
      [
        releaseId,
        t.orgId,
        lines.map((_, i) => first + i),
        lines.map((l) => l.at),
        lines.map((l) => l.stream),
        lines.map((l) => l.line),
      ],
    );
  },
  list: async (releaseId, afterSeq = 0, limit) => {
    const n = clampLimit(limit, maxLogLines, defaultLogLines);
    const r = await t.tx.query(
      `${selectSql(releaseLogsTable)} where release_id = $1 and org_id = $2 and seq > $3 order by seq limit ${n}`,
      [releaseId, t.orgId, afterSeq],
    );
    return r.rows.map((row) => fromRow(releaseLogsTable, row));
  },
});

const joblessTable = table<
  Pick<Release, 'id' | 'orgId' | 'serviceId' | 'environmentId' | 'createdAt'>
>('releases', ['id', 'orgId', 'serviceId', 'environmentId', 'createdAt']);

/** No org is known to the sweep, so it reads through a security-definer function (migration 0009). */
export const pgReleaseLookup = (db: SqlClient): ReleaseLookup => ({
  joblessReleases: async (before, limit) => {
    const r = await db.query(
      'select id, org_id, service_id, environment_id, created_at from selfdevop_jobless_releases($1, $2)',
      [before, limit],
    );
    return r.rows.map((row) => fromRow(joblessTable, row));
  },
  buildNodes: async (limit) => {
    const r = await db.query('select org_id, node_id from selfdevop_build_nodes($1)', [limit]);
    return r.rows.map((row) => ({ orgId: String(row.org_id), nodeId: String(row.node_id) }));
  },
});
