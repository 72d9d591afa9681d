import type { NodeRecord } from '../../../core/models.ts';
import type { NodeLookup, NodeRepo } from '../../../core/ports.ts';
import type { SqlClient } from '../../db/postgres.ts';
import { eq, table, updateSql } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const nodesTable = table<NodeRecord>('nodes', [
  'id',
  'orgId',
  'name',
  'kind',
  'dockerHost',
  'address',
  'labels',
  'drainMode',
  'createdAt',
  'sealedTls',
  'sealedSsh',
  'credentialsUpdatedAt',
  'operatorRegistered',
  'reachability',
  'reachabilitySince',
  'lastSeenAt',
  'missedChecks',
]);

export const pgNodeRepo = (t: TenantSql): NodeRepo => ({
  insert: (n) => t.insert(nodesTable, n),
  get: (id) => t.one(nodesTable, [eq('id', id), t.org()]),
  list: (page) => t.page(nodesTable, [], page),
  setCredentials: async (id, patch) => {
    await t.updateById(nodesTable, 'node', id, patch);
  },
  update: async (id, patch) => {
    await t.updateById(nodesTable, 'node', id, patch);
  },
  setDrainMode: async (id, drainMode) => {
    await t.updateById(nodesTable, 'node', id, { drainMode });
  },
  recordCheck: async (id, from, patch) => {
    const q = updateSql(nodesTable, patch, [eq('id', id), t.org(), eq('reachability', from)]);
    const r = await t.tx.query(q!.text, q!.values);
    return r.rowCount > 0;
  },
  delete: async (id) => {
    // Old releases keep their history; the foreign key forbids naming a node that is gone.
    await t.tx.query('update releases set node_id = null where org_id = $1 and node_id = $2', [
      t.orgId,
      id,
    ]);
    return t.deleteWhere(nodesTable, [eq('id', id), t.org()]);
  },
});

/** No org is known to the node checks, so they start from a security-definer function (migration 0027). */
export const pgNodeLookup = (db: SqlClient): NodeLookup => ({
  orgsWithNodes: async () => {
    const r = await db.query('select org_id from selfdevop_node_orgs()', []);
    return r.rows.map((row) => String((row as { org_id: string }).org_id));
  },
});
