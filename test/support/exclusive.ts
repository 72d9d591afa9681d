/**
 * A setup file of the `integration` project: integration files run in several forks at
 * once (vitest.config.ts), and the few that change state other files read on the same
 * shared machine take a lock for their whole file, so they run one at a time among
 * themselves while every other file keeps running beside them.
 *
 * The lock is a PostgreSQL advisory lock in the admin database, held by one connection
 * from the file's first hook to its last: it is released when the file ends, and also when
 * its fork dies (the connection closes), so a crashed file never blocks the rest of the run.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { adminUrl } from './db.ts';

/**
 * Which shared resource a file mutates, by path prefix (relative to the repo root).
 * The Swarm on nodes 7-9 is one cluster: test/swarm/swarm.test.ts freezes a member and
 * relabels members, which test/swarm/swarm-cluster.test.ts lists and reads.
 */
export const exclusiveResources: readonly { prefix: string; resource: string }[] = [
  { prefix: 'test/swarm/', resource: 'swarm-7-9' },
];

/** How long a file may wait for another holding its resource: a whole Swarm suite. */
const waitMs = 30 * 60_000;

const root = path.resolve(import.meta.dirname, '../..');

export function resourceOf(file: string): string | undefined {
  const relative = path.relative(root, file).split(path.sep).join('/');
  return exclusiveResources.find((r) => relative.startsWith(r.prefix))?.resource;
}

/** A stable 63-bit key per resource name (advisory locks take a bigint). */
const lockKey = (resource: string): string =>
  BigInt.asIntN(
    64,
    BigInt(`0x${createHash('sha256').update(`sdo-test:${resource}`).digest('hex').slice(0, 16)}`),
  ).toString();

let holder: pg.Client | undefined;

// vitest hands hooks their fixtures first, and requires that argument be destructured.
// eslint-disable-next-line no-empty-pattern
beforeAll(async ({}, suite) => {
  const resource = resourceOf(suite.file.filepath);
  if (!resource) return;
  holder = new pg.Client({ connectionString: adminUrl, application_name: `sdo-test ${resource}` });
  await holder.connect();
  await holder.query('select pg_advisory_lock($1::bigint)', [lockKey(resource)]);
}, waitMs);

afterAll(async () => {
  await holder?.end().catch(() => undefined);
  holder = undefined;
});
