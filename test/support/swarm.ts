/**
 * The test Swarm (scripts/swarm-up.sh 7 8 9: multi-node engines 7-9, three managers at
 * 10.213.0.17-19) as the suites driving it through the API use it: whether it is up, its
 * members' engines, moving an image onto them (no registry here) and removing what an org
 * left on it.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { SwarmRuntime } from '../../adapters/runtime/swarm.ts';
import type { DockerTarget } from '../../core/ports.ts';
import { removeContainersByLabel } from './docker.ts';
import { isCi } from './services.ts';

const exec = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const managerSocket = '/run/sdo-node7/docker.sock';
/** The manager selfdevop registers (node 7). */
export const managerHost = `unix://${managerSocket}`;
export const memberAddresses = ['10.213.0.17', '10.213.0.18', '10.213.0.19'];
/** Each member's own engine by its hostname, as the manager names it. */
export const memberEngines: Record<string, string> = Object.fromEntries(
  [7, 8, 9].map((i) => [`sdo-node${i}`, `unix:///run/sdo-node${i}/docker.sock`]),
);
/** The manager's own engine, as the tests read it (no Swarm routing). */
export const managerEngine: DockerTarget = { dockerHost: managerHost };
export const cluster: DockerTarget = { dockerHost: managerHost, swarm: true };

/** The docker CLI against one engine (the host's when `host` is null). */
export const dk = (host: string | null, ...args: string[]) =>
  exec('docker', host ? ['-H', host, ...args] : args, { timeout: 300_000 }).then((r) =>
    r.stdout.trim(),
  );

/** Why the Swarm is not usable here, or null when three managers answer, ready and active. */
export async function swarmAbsence(): Promise<string | null> {
  if (!existsSync(managerSocket)) return `no engine at ${managerSocket}`;
  try {
    const members = await new SwarmRuntime().members(cluster);
    const ready = members.filter(
      (m) =>
        m.role === 'manager' &&
        m.state === 'ready' &&
        m.availability === 'active' &&
        memberAddresses.includes(m.address),
    );
    return ready.length === 3 ? null : `${ready.length} of 3 managers ready and active`;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * True when the Swarm is up; otherwise warns that `suite` is skipped, or throws under
 * CI=true (CI must not skip).
 */
export async function swarmReady(suite: string): Promise<boolean> {
  const absent = await swarmAbsence();
  if (!absent) return true;
  const why = `the Swarm on nodes 7-9 is not up (${absent}): run ../shared/ci/multi-node.sh up 9, then bash scripts/swarm-up.sh 7 8 9`;
  if (isCi) throw new Error(`CI must not skip: ${why}`);
  console.warn(`\n*** SKIPPING ${suite}: ${why} ***\n`);
  return false;
}

/**
 * Waits (at most deadlineMs) until all three members are ready and active again: one that
 * missed heartbeats on a loaded machine is back within seconds, and a spread needs all.
 */
export async function allMembersReady(deadlineMs = 90_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const members = await new SwarmRuntime().members(cluster).catch(() => []);
    if (members.filter((m) => m.state === 'ready' && m.availability === 'active').length === 3)
      return;
    if (Date.now() > end)
      throw new Error(
        `the Swarm's members are not all ready after ${deadlineMs} ms: ${members.map((m) => `${m.hostname} ${m.state}/${m.availability}`).join('; ')}`,
      );
    await sleep(500);
  }
}

/**
 * Copies `image` from the host engine to `host` unless it has that very image already (no
 * registry here: a member runs only what it holds).
 */
export async function copyImage(image: string, host: string): Promise<void> {
  const want = await dk(null, 'image', 'inspect', '-f', '{{.Id}}', image);
  const have = await dk(host, 'image', 'inspect', '-f', '{{.Id}}', image).catch(() => '');
  if (have === want) return;
  await exec('sh', ['-c', 'docker save "$1" | docker -H "$2" load -q', 'sh', image, host], {
    timeout: 600_000,
  });
}

/**
 * Removes what an org left on the Swarm: its services, its containers on the manager's
 * engine (data services), their volumes, and the project's overlay once no task is attached
 * any more (their removal takes a moment).
 */
export async function removeOrgFromSwarm(
  orgId: string,
  data: { volumes: string[]; networks: string[] },
): Promise<void> {
  const swarm = new SwarmRuntime();
  for (const s of await swarm.list(cluster, { 'selfdevop.org': orgId }).catch(() => []))
    await swarm.remove(cluster, s.name).catch(() => undefined);
  await removeContainersByLabel({ 'selfdevop.org': orgId }, managerEngine).catch(() => undefined);
  for (const v of data.volumes)
    await dk(managerHost, 'volume', 'rm', '-f', v).catch(() => undefined);
  for (const n of data.networks)
    for (let i = 0; i < 30; i++) {
      const gone = await dk(managerHost, 'network', 'rm', n).then(
        () => true,
        (e: Error) => /not found|No such network/i.test(e.message),
      );
      if (gone) break;
      await sleep(1000);
    }
}
