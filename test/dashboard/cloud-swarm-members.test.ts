/**
 * The node page's Swarm member buttons in the cloud edition, in a real browser (Chromium):
 * the cloud API (fromCloud with WORKER_FUNCTION_NAME, signed in through the Cognito-shaped
 * hosted UI) reaches no engine, so the page's read and the Drain / Undrain buttons go
 * through the Lambda adapter to the worker function's handler, which runs the use cases
 * on the same PostgreSQL against a Swarm's manager (a fake one here; the self-hosted
 * buttons on a real Swarm: test/swarm/swarm-cluster.test.ts). The Lambda service is
 * aws-sdk-client-mock, handing the SDK's payload to the real worker handler.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { MemoryRuntime } from '../../adapters/runtime/memory.ts';
import { swarmMembersHere } from '../../core/nodes/cluster.ts';
import { createWorkerHandler } from '../../functions/lambda/worker-handler.ts';
import { startCloudDashboard, type CloudDashboard } from '../cloud/hosted-sign-in.ts';
import { FakeSwarm } from '../contracts/swarm-members.case.ts';
import { aNode } from '../core/releases/builders.ts';
import { chromiumAvailable, launchChromium } from './browser.ts';

const ready = chromiumAvailable();
const shots = join(import.meta.dirname, '..', '..', 'test-results', 'screenshots');

describe.skipIf(!ready)('Swarm member buttons in the cloud dashboard', () => {
  let app: CloudDashboard;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  const swarm = new FakeSwarm();
  const lambda = mockClient(LambdaClient);
  const invoked: string[] = [];

  beforeAll(async () => {
    await mkdir(shots, { recursive: true });
    app = await startCloudDashboard({ WORKER_FUNCTION_NAME: 'selfdevop-worker' });
    // The worker function: same database, and it reaches the manager.
    const worker = createWorkerHandler({
      queue: app.system.queue,
      handlers: {},
      logger: new MemoryLogger(),
      swarmMembers: swarmMembersHere({
        ...app.system.release,
        runtime: swarm.runtime(new MemoryRuntime()),
      }),
    });
    lambda.on(InvokeCommand).callsFake(async (input: InvokeCommand['input']) => {
      const event = JSON.parse(new TextDecoder().decode(input.Payload as Uint8Array)) as {
        op: string;
      };
      invoked.push(`${String(input.FunctionName)} ${event.op}`);
      const answer = await worker(event);
      return {
        StatusCode: 200,
        Payload: new TextEncoder().encode(JSON.stringify(answer)) as never,
      };
    });
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    lambda.restore();
    await browser?.close();
    await app?.close();
  });

  it('shows the members and drains and undrains one through the worker', async () => {
    const user = app.hosted.addUser('swarm@example.com', 'Correct-horse-9');
    const page = await browser.context.newPage();
    page.on('dialog', (d) => void d.accept());
    await page.goto(`${app.url}/dashboard`);
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Create an organization' }).waitFor();
    await page.getByLabel('Name').fill('Swarm Cloud');
    await page.getByRole('button', { name: 'Create organization' }).click();
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
    const orgId = (await page
      .getByLabel('Organization')
      .locator('option:checked')
      .getAttribute('value'))!;
    expect(orgId).toMatch(/^org_/);
    await app.system.api.store.withOrg(orgId, (r) =>
      r.nodes.insert(
        aNode({
          id: 'node_swarm7',
          orgId,
          name: 'swarm',
          kind: 'swarm',
          dockerHost: 'unix:///run/sdo-node7/docker.sock',
          address: '10.213.0.17',
        }),
      ),
    );

    await page.goto(`${app.url}/dashboard/nodes/node_swarm7`);
    await page.getByRole('heading', { name: 'Swarm members' }).waitFor();
    const members = page.locator('section[aria-labelledby="cluster"] tbody tr');
    expect(await members.count()).toBe(3);
    expect(invoked).toEqual(['selfdevop-worker read']);

    await page.getByRole('button', { name: 'Drain sdo-node8' }).click();
    await page.getByRole('button', { name: 'Undrain sdo-node8' }).waitFor();
    expect(await page.getByRole('status').textContent()).toContain(
      'Draining member sdo-node8: 0 replica(s) left the edge',
    );
    expect(swarm.members.find((m) => m.hostname === 'sdo-node8')!.availability).toBe('drain');
    await page.screenshot({ path: join(shots, 'cloud-swarm-member-drained.png'), fullPage: true });

    await page.getByRole('button', { name: 'Undrain sdo-node8' }).click();
    await page.getByRole('button', { name: 'Drain sdo-node8' }).waitFor();
    expect(await page.getByRole('status').textContent()).toContain(
      'Member sdo-node8 takes tasks again.',
    );
    expect(swarm.members.every((m) => m.availability === 'active')).toBe(true);
    expect(invoked.filter((i) => !i.endsWith('read'))).toEqual([
      'selfdevop-worker drain',
      'selfdevop-worker undrain',
    ]);
    // Audited by the worker, as the self-hosted API audits them.
    const audit = await app.system.api.store.withOrg(orgId, (r) =>
      r.audit.list({ limit: 10 }, { action: 'node.member_drained' }),
    );
    expect(audit.items).toHaveLength(1);
    expect(audit.items[0]).toMatchObject({
      targetId: 'node_swarm7',
      data: { member: 'sdo-node8' },
    });
  }, 90_000);
});
