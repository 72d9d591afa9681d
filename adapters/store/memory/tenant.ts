/** What every repository of one org's transaction shares: its view of the tables and its org. */
import type { Page, PageRequest, Release } from '../../../core/models.ts';
import type { ListFilter } from '../../../core/ports.ts';
import { clampLimit, toPage } from '../page.ts';
import { byIdAsc, checkRow, clone, definedEntries, pick, type Overlay } from './overlay.ts';
import { rlsViolation, rules, type Row, type TableName } from './tables.ts';

export class TenantView {
  readonly view: Overlay;
  readonly orgId: string;

  constructor(view: Overlay, orgId: string) {
    this.view = view;
    this.orgId = orgId;
  }

  mine(t: TableName): Row[] {
    return this.view
      .rows(t)
      .filter((r) => (t === 'orgs' ? r.id === this.orgId : r.orgId === this.orgId));
  }

  getOwn<M>(t: TableName, key: string): M | null {
    const row = this.view.get(t, key);
    return row && row.orgId === this.orgId ? pick<M>(row) : null;
  }

  insert(t: TableName, model: object): void {
    const row = clone(model) as Row;
    if ((t === 'orgs' ? row.id : row.orgId) !== this.orgId) throw rlsViolation(rules[t].sqlName);
    checkRow(this.view, t, row);
    this.view.put(t, rules[t].key(row), row);
  }

  /** Applies a patch to an own row, rechecking constraints; false when there is no such row. */
  patch(
    t: TableName,
    key: string,
    patch: object,
    immutable: readonly string[],
    precondition?: (row: Row) => boolean,
  ): boolean {
    const existing = this.view.get(t, key);
    if (!existing || existing.orgId !== this.orgId || (precondition && !precondition(existing)))
      return false;
    const next = { ...existing, ...definedEntries(patch, immutable) };
    checkRow(this.view, t, next, key);
    this.view.put(t, key, next);
    return true;
  }

  page<M>(t: TableName, rows: Row[], page: PageRequest): Page<M> {
    const limit = clampLimit(page.limit);
    const after = page.cursor;
    const sorted = rows
      .filter((r) => !after || String(r.id) > after)
      .sort(byIdAsc)
      .slice(0, limit + 1);
    return toPage(
      sorted.map((r) => clone(r) as M & { id: string }),
      limit,
    );
  }

  filtered(t: TableName, filter: ListFilter | undefined, project: 'direct' | 'viaService'): Row[] {
    return this.mine(t).filter((r) => {
      if (filter?.projectId) {
        const projectId =
          project === 'direct'
            ? r.projectId
            : this.view.get('services', String(r.serviceId))?.projectId;
        if (projectId !== filter.projectId) return false;
      }
      if (filter?.serviceId && 'serviceId' in r && r.serviceId !== filter.serviceId) return false;
      if (filter?.environmentId && 'environmentId' in r && r.environmentId !== filter.environmentId)
        return false;
      return true;
    });
  }

  newestWhere(pred: (r: Row) => boolean): Release | null {
    const rows = this.mine('releases').filter(pred).sort(byIdAsc);
    return pick<Release>(rows[rows.length - 1]);
  }
}
