/**
 * Pure SQL builders and row mapping for the PostgreSQL store: text in, text out, no I/O,
 * so each statement the repositories send can be checked by reading it.
 */
import type { PageRequest } from '../../../core/models.ts';
import { clampLimit } from '../page.ts';

export interface Table<M> {
  name: string;
  /** Model keys, in column order; each column is the key in snake_case. */
  keys: readonly (keyof M & string)[];
}

/** What the SQL builders need of a table, whatever its model. */
export interface TableShape {
  name: string;
  keys: readonly string[];
}

export const table = <M>(name: string, keys: readonly (keyof M & string)[]): Table<M> => ({
  name,
  keys,
});

// Called per field of every row read, so the answer for each key is remembered.
const columnNames = new Map<string, string>();
export const toColumn = (key: string): string => {
  let column = columnNames.get(key);
  if (column === undefined) {
    column = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    columnNames.set(key, column);
  }
  return column;
};

const placeholders = (count: number, from = 1): string =>
  Array.from({ length: count }, (_, i) => `$${i + from}`).join(', ');

// Every read starts with its table's select list; built once per table, not per request.
const selectsOf = new WeakMap<TableShape, string>();
export const selectSql = (t: TableShape): string => {
  let text = selectsOf.get(t);
  if (text === undefined) {
    text = `select ${t.keys.map(toColumn).join(', ')} from ${t.name}`;
    selectsOf.set(t, text);
  }
  return text;
};

export const insertSql = (t: TableShape): string =>
  `insert into ${t.name} (${t.keys.map(toColumn).join(', ')}) values (${placeholders(t.keys.length)})`;

/** `on conflict (...) do update` setting every column except the conflict target and org. */
export const upsertSql = (
  t: TableShape,
  conflict: readonly string[],
  keep: readonly string[] = [],
): string => {
  const fixed = new Set([...conflict, 'orgId', ...keep]);
  const sets = t.keys
    .filter((k) => !fixed.has(k))
    .map((k) => `${toColumn(k)} = excluded.${toColumn(k)}`);
  return `${insertSql(t)} on conflict (${conflict.map(toColumn).join(', ')}) do update set ${sets.join(', ')}`;
};

// The same list with each column named by its model key (`org_id as "orgId"`): PostgreSQL
// then answers rows that already are models, and no row is copied key by key (fromRow's
// keyed stores were the largest cost of reading a page after the driver's own parsing).
const modelSelectsOf = new WeakMap<TableShape, string>();
/** `select <columns as model keys> from <table>`: rows come back as models (see TenantSql). */
export const selectModelSql = (t: TableShape): string => {
  let text = modelSelectsOf.get(t);
  if (text === undefined) {
    const list = t.keys.map((k) => (toColumn(k) === k ? k : `${toColumn(k)} as "${k}"`));
    text = `select ${list.join(', ')} from ${t.name}`;
    modelSelectsOf.set(t, text);
  }
  return text;
};

/** One equality or subquery condition; `sql` receives its placeholder. */
export interface Condition {
  sql: (param: string) => string;
  value: unknown;
}

export const eq = (column: string, value: unknown): Condition => ({
  sql: (p) => `${column} = ${p}`,
  value,
});

export const whereSql = (conditions: readonly Condition[], from = 1): string =>
  conditions.length === 0
    ? ''
    : ` where ${conditions.map((c, i) => c.sql(`$${i + from}`)).join(' and ')}`;

/**
 * A keyset page: rows after the cursor id, ordered by id, one extra to detect a next page.
 * Its rows are models already (selectModelSql).
 */
export function pageSql(
  t: TableShape,
  conditions: readonly Condition[],
  page: PageRequest,
): { text: string; values: unknown[]; limit: number } {
  const limit = clampLimit(page.limit);
  const all = page.cursor
    ? [...conditions, { sql: (p: string) => `id > ${p}`, value: page.cursor }]
    : conditions;
  return {
    text: `${selectModelSql(t)}${whereSql(all)} order by id limit ${limit + 1}`,
    values: all.map((c) => c.value),
    limit,
  };
}

/** `update t set a = $n, … where <conditions>` for the patch keys the table has. */
export function updateSql(
  t: TableShape,
  patch: Record<string, unknown>,
  conditions: readonly Condition[],
  immutable: readonly string[] = ['id', 'orgId'],
): { text: string; values: unknown[] } | null {
  const keys = t.keys.filter((k) => k in patch && patch[k] !== undefined && !immutable.includes(k));
  if (keys.length === 0) return null;
  const sets = keys.map((k, i) => `${toColumn(k)} = $${i + 1}`).join(', ');
  return {
    text: `update ${t.name} set ${sets}${whereSql(conditions, keys.length + 1)}`,
    values: [...keys.map((k) => toParam(patch[k])), ...conditions.map((c) => c.value)],
  };
}

/** `'a', 'b'`: a status set as SQL literals, for predicates derived from the core's sets. */
export const sqlList = (values: readonly string[]): string => values.map(quoteLiteral).join(', ');

/** A SQL string literal (standard_conforming_strings, on since PostgreSQL 9.1). */
export function quoteLiteral(value: string): string {
  if (value.includes('\u0000')) throw new Error('a SQL literal cannot contain NUL');
  return `'${value.replace(/'/g, "''")}'`;
}

// ---------------------------------------------------------------- rows <-> models

export const toParam = (v: unknown): unknown => (v === undefined ? null : v);

export const valuesOf = <M>(t: Table<M>, model: M): unknown[] =>
  t.keys.map((k) => toParam(model[k]));

// Per table, its keys paired with their columns: fromRow runs for every row read.
const pairsOf = new WeakMap<TableShape, readonly (readonly [string, string])[]>();
const pairs = (t: TableShape) => {
  let p = pairsOf.get(t);
  if (!p) {
    p = t.keys.map((k) => [k, toColumn(k)] as const);
    pairsOf.set(t, p);
  }
  return p;
};

/** Times come back as ISO strings (a Date, from a parser that made one, becomes one); jsonb, arrays, numbers, booleans as they are. */
export function fromRow<M>(t: Table<M>, row: Record<string, unknown>): M {
  const out: Record<string, unknown> = {};
  for (const [k, column] of pairs(t)) {
    const v = row[column];
    out[k] = v instanceof Date ? v.toISOString() : v;
  }
  return out as M;
}
