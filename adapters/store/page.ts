/** Paging rules shared by every Store implementation, so they page identically. */
import type { Page } from '../../core/models.ts';

export const maxPageSize = 200;
export const defaultPageSize = 50;
export const maxLogLines = 5000;
export const defaultLogLines = 1000;

/** A page size between 1 and maxPageSize; a missing or nonsensical one gets the default. */
export function clampLimit(
  limit: number | undefined,
  max = maxPageSize,
  fallback = defaultPageSize,
): number {
  if (limit === undefined || !Number.isFinite(limit) || limit < 1) return fallback;
  return Math.min(Math.floor(limit), max);
}

/**
 * Cuts `rows` (fetched with limit + 1, ordered by id) to one page: the extra row only says
 * there is a next page, whose cursor is the last id of this one.
 */
export function toPage<T extends { id: string }>(rows: T[], limit: number): Page<T> {
  if (rows.length <= limit) return { items: rows, nextCursor: null };
  const items = rows.slice(0, limit);
  return { items, nextCursor: items[items.length - 1]?.id ?? null };
}
