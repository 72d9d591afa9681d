/**
 * A setup file of the `integration` project: integration files run in several forks at
 * once (vitest.config.ts), and this makes the exceptions, with locks each file holds from
 * its first hook to its last:
 * - a file that changes state other files read on the same shared machine names that
 *   resource, and runs one at a time with the other files naming it, beside the rest;
 * - a file whose assertions are sensitive to a loaded machine (counts over a wall-clock
 *   window, thousands of requests on keep-alive connections, child processes started under
 *   a deadline) runs alone: every file holds a shared lock, such a file an exclusive one.
 *   They were written and are meant to be judged on a machine doing just them.
 *
 * The locks are PostgreSQL advisory locks in the admin database, held by one connection
 * per file: released when the file ends, and also when its fork dies (the connection
 * closes), so a crashed file never blocks the rest of the run. PostgreSQL queues a shared
 * request behind a waiting exclusive one, so a file waiting to run alone is not starved.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { adminUrl } from './db.ts';

/**
 * Which shared resource a file mutates, by path prefix (relative to the repo root).
 * The Swarm on nodes 7-9 is one cluster: test/swarm/swarm.test.ts freezes a member and
 * relabels members, which test/swarm/swarm-cluster.test.ts lists and reads; the runtime
 * contract on it runs one-offs whose logs Swarm cannot read while a member is frozen (CI
 * saw "node … is not available"), so it takes the Swarm's lock too.
 */
export const exclusiveResources: readonly { prefix: string; resource: string }[] = [
  { prefix: 'test/swarm/', resource: 'swarm-7-9' },
  { prefix: 'test/adapters/container-runtime-swarm.test.ts', resource: 'swarm-7-9' },
  // Both kill and boot engines of the node-loss range (4–6).
  { prefix: 'test/scale/node-loss.test.ts', resource: 'nodes-4-6' },
  { prefix: 'test/scale/node-delete.test.ts', resource: 'nodes-4-6' },
];

/**
 * Files that run alone, seen failing under load beside other files (and passing alone):
 * unbounded-output counts the transactions of a wall-clock window, which grows with load;
 * unbounded-streams and fuzz send thousands of requests and saw ECONNRESET; team-takeover
 * starts API processes under a 30 s deadline.
 */
export const aloneFiles: readonly string[] = [
  'test/security/unbounded-output.test.ts',
  'test/security/unbounded-streams.test.ts',
  'test/security/team-takeover.test.ts',
  'test/api/fuzz.test.ts',
];

/** How long a file may wait for its locks: a whole Swarm suite, or every file running. */
const waitMs = 30 * 60_000;

const root = path.resolve(import.meta.dirname, '../..');

const relativeOf = (file: string) => path.relative(root, file).split(path.sep).join('/');

export function resourceOf(file: string): string | undefined {
  const relative = relativeOf(file);
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
  const file = suite.file.filepath;
  const resource = resourceOf(file);
  holder = new pg.Client({
    connectionString: adminUrl,
    application_name: `sdo-test ${relativeOf(file)}`.slice(0, 63),
  });
  await holder.connect();
  const alone = lockKey('alone');
  if (aloneFiles.includes(relativeOf(file)))
    await holder.query('select pg_advisory_lock($1::bigint)', [alone]);
  else await holder.query('select pg_advisory_lock_shared($1::bigint)', [alone]);
  if (resource) await holder.query('select pg_advisory_lock($1::bigint)', [lockKey(resource)]);
}, waitMs);

afterAll(async () => {
  await holder?.end().catch(() => undefined);
  holder = undefined;
});
