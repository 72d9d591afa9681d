/**
 * What every repository of one org's transaction shares: the connection, the org id and
 * the few query shapes they are built from. Every statement also names org_id, so it stays
 * confined even if a row-level security policy were ever dropped.
 */
import { NotFound } from '../../../core/errors.ts';
import type { Page, PageRequest } from '../../../core/models.ts';
import type { ListFilter } from '../../../core/ports.ts';
import type { SqlClient } from '../../db/postgres.ts';
import { toPage } from '../page.ts';
import { guardedWrite } from './constraints.ts';
import {
  eq,
  insertSql,
  pageSql,
  selectModelSql,
  updateSql,
  valuesOf,
  whereSql,
  type Condition,
  type Table,
  type TableShape,
} from './sql.ts';

export class TenantSql {
  readonly tx: SqlClient;
  readonly orgId: string;

  constructor(tx: SqlClient, orgId: string) {
    this.tx = tx;
    this.orgId = orgId;
  }

  org(): Condition {
    return eq('org_id', this.orgId);
  }

  // one, all and page select the model keys themselves (selectModelSql), and the pool's
  // type parsers give times as ISO strings, so each row PostgreSQL answers is the model.
  async one<M>(t: Table<M>, conditions: Condition[]): Promise<M | null> {
    const r = await this.tx.query<M>(
      `${selectModelSql(t)}${whereSql(conditions)} limit 1`,
      conditions.map((c) => c.value),
    );
    return r.rows[0] ?? null;
  }

  async all<M>(t: Table<M>, conditions: Condition[], orderBy: string): Promise<M[]> {
    const r = await this.tx.query<M>(
      `${selectModelSql(t)}${whereSql(conditions)} order by ${orderBy}`,
      conditions.map((c) => c.value),
    );
    return r.rows;
  }

  async page<M extends { id: string }>(
    t: Table<M>,
    conditions: Condition[],
    page: PageRequest,
  ): Promise<Page<M>> {
    const q = pageSql(t, [this.org(), ...conditions], page);
    const r = await this.tx.query<M>(q.text, q.values);
    return toPage(r.rows, q.limit);
  }

  async insert<M>(t: Table<M>, model: M): Promise<void> {
    await guardedWrite(this.tx, insertSql(t), valuesOf(t, model), model as Record<string, unknown>);
  }

  async updateById<M>(
    t: Table<M>,
    what: string,
    id: string,
    patch: Record<string, unknown>,
    immutable?: string[],
  ): Promise<boolean> {
    const q = updateSql(t, patch, [eq('id', id), this.org()], immutable);
    const count = q
      ? await guardedWrite(this.tx, q.text, q.values, { ...patch, id })
      : (await this.one(t, [eq('id', id), this.org()])) === null
        ? 0
        : 1;
    if (count === 0) throw new NotFound(what, id);
    return true;
  }

  async deleteWhere(t: TableShape, conditions: Condition[]): Promise<boolean> {
    const r = await this.tx.query(
      `delete from ${t.name}${whereSql(conditions)}`,
      conditions.map((c) => c.value),
    );
    return r.rowCount > 0;
  }

  /** projectId filters rows that only know their service through the service. */
  filterConditions(
    filter: ListFilter | undefined,
    columns: { project?: 'direct' | 'viaService'; service?: boolean; environment?: boolean },
  ): Condition[] {
    const out: Condition[] = [];
    if (filter?.projectId && columns.project === 'direct')
      out.push(eq('project_id', filter.projectId));
    if (filter?.projectId && columns.project === 'viaService') {
      out.push({
        sql: (p) => `service_id in (select id from services where project_id = ${p})`,
        value: filter.projectId,
      });
    }
    if (filter?.serviceId && columns.service) out.push(eq('service_id', filter.serviceId));
    if (filter?.environmentId && columns.environment)
      out.push(eq('environment_id', filter.environmentId));
    return out;
  }
}
