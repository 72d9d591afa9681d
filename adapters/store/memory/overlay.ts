/** One transaction's view of the tables, and the constraint checks every write goes through. */
import { AlreadyExists, NotFound } from '../../../core/errors.ts';
import { rules, type Row, type TableName, type Tables } from './tables.ts';

export const clone = <T>(v: T): T => structuredClone(v);

/** Reads see committed rows under this transaction's own writes; commit applies them. */
export class Overlay {
  private readonly base: Tables;
  private readonly writes = new Map<TableName, Map<string, Row | null>>();

  constructor(base: Tables) {
    this.base = base;
  }

  get(t: TableName, key: string): Row | undefined {
    const w = this.writes.get(t);
    if (w?.has(key)) return w.get(key) ?? undefined;
    return this.base[t].get(key);
  }

  rows(t: TableName): Row[] {
    const w = this.writes.get(t);
    const out: Row[] = [];
    for (const [k, v] of this.base[t]) if (!w?.has(k)) out.push(v);
    if (w) for (const v of w.values()) if (v) out.push(v);
    return out;
  }

  put(t: TableName, key: string, row: Row): void {
    this.tableWrites(t).set(key, clone(row));
  }

  delete(t: TableName, key: string): void {
    this.tableWrites(t).set(key, null);
  }

  commit(): void {
    for (const [t, w] of this.writes) {
      for (const [k, v] of w) {
        if (v) this.base[t].set(k, v);
        else this.base[t].delete(k);
      }
    }
  }

  private tableWrites(t: TableName): Map<string, Row | null> {
    let w = this.writes.get(t);
    if (!w) this.writes.set(t, (w = new Map()));
    return w;
  }
}

/**
 * Checks a row about to be written against the table's rules, as PostgreSQL would.
 * `replacing` is the key of the row an update replaces, which must not clash with itself.
 */
export function checkRow(view: Overlay, t: TableName, row: Row, replacing?: string): void {
  const r = rules[t];
  const key = r.key(row);
  if (key !== replacing && view.get(t, key) !== undefined) {
    throw new AlreadyExists(r.what, String(row[r.keyNames ?? 'id'] ?? key));
  }
  for (const u of r.unique) {
    if (u.where && !u.where(row)) continue;
    const norm = u.normalize ?? ((v: unknown) => v);
    const clash = view
      .rows(t)
      .find(
        (other) =>
          r.key(other) !== key &&
          r.key(other) !== replacing &&
          (!u.where || u.where(other)) &&
          u.fields.every((f) => norm(other[f]) === norm(row[f])),
      );
    if (clash)
      throw u.error ? u.error(clash) : new AlreadyExists(u.what, String(row[u.names] ?? ''));
  }
  checkParents(view, t, row);
}

export function checkParents(view: Overlay, t: TableName, row: Row): void {
  const r = rules[t];
  if (r.tenant && !view.get('orgs', String(row.orgId)))
    throw new NotFound('org', String(row.orgId));
  for (const f of r.foreign) {
    const value = row[f.field];
    if (value === null || value === undefined) continue;
    const parent = view.get(f.table, String(value));
    // Foreign keys are (org_id, id) pairs in SQL: a parent of another org does not count.
    if (!parent || (rules[f.table].tenant && parent.orgId !== row.orgId))
      throw new NotFound(f.what, String(value));
  }
}

export const pick = <M>(row: Row | undefined): M | null => (row ? (clone(row) as M) : null);

export const definedEntries = (patch: object, immutable: readonly string[]): Row =>
  Object.fromEntries(
    Object.entries(patch).filter(([k, v]) => v !== undefined && !immutable.includes(k)),
  );

export const byIdAsc = (a: Row, b: Row): number =>
  String(a.id) < String(b.id) ? -1 : String(a.id) > String(b.id) ? 1 : 0;
