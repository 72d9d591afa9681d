/**
 * SwarmMembers both ways (test/contracts/swarm-members.case.ts): in the API's own process
 * (self-hosted), and from an API that reaches no engine through the Lambda adapter to the
 * worker function's handler, which runs the use cases where the manager is reached. The
 * Lambda service is aws-sdk-client-mock calling the real worker handler with the payload
 * bytes the SDK sends, and answering the bytes the handler returns.
 */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { LambdaSwarmMembers } from '../../adapters/swarm-members/lambda.ts';
import { swarmMembersInvocationType } from '../../adapters/swarm-members/wire.ts';
import { requestMemberDrain, swarmMembersHere } from '../../core/nodes/cluster.ts';
import type { ContainerRuntime } from '../../core/ports.ts';
import { createWorkerHandler } from '../../functions/lambda/worker-handler.ts';
import {
  FakeSwarm,
  runSwarmMembersContract,
  swarmNodeId,
} from '../contracts/swarm-members.case.ts';
import { deployer, setup, type Harness } from '../core/releases/harness.ts';
import { aNode } from '../core/releases/builders.ts';

/** The cloud API's runtime: it reaches no engine, so it has no Swarm calls. */
const noSwarm = (runtime: ContainerRuntime): ContainerRuntime => {
  const api = Object.create(runtime) as ContainerRuntime;
  api.clusterMembers = undefined;
  api.setMemberAvailability = undefined;
  return api;
};

/** The worker function behind a mocked Lambda service; `invocations` counts what crossed. */
function workerBehindLambda(h: Harness, swarm: FakeSwarm) {
  const worker = createWorkerHandler({
    queue: { physicalNames: () => ({ main: 'm', delay: 'd' }) } as never,
    handlers: {},
    logger: h.logger,
    swarmMembers: swarmMembersHere({ ...h.deps, runtime: swarm.runtime(h.runtime) }),
  });
  const client = new LambdaClient({ region: 'eu-west-1' });
  const lambda = mockClient(client);
  const invocations: unknown[] = [];
  lambda.on(InvokeCommand).callsFake(async (input: InvokeCommand['input']) => {
    expect(input).toMatchObject({
      FunctionName: 'selfdevop-worker',
      InvocationType: 'RequestResponse',
    });
    const event = JSON.parse(new TextDecoder().decode(input.Payload as Uint8Array)) as unknown;
    invocations.push(event);
    try {
      const answer = await worker(event);
      return {
        StatusCode: 200,
        Payload: new TextEncoder().encode(JSON.stringify(answer)) as never,
      };
    } catch (e) {
      // How Lambda reports a handler that threw.
      return {
        StatusCode: 200,
        FunctionError: 'Unhandled',
        Payload: new TextEncoder().encode(
          JSON.stringify({ errorType: 'Error', errorMessage: (e as Error).message }),
        ) as never,
      };
    }
  });
  return { client, lambda, invocations };
}

runSwarmMembersContract('in-process (self-hosted)', async (h, swarm) => ({
  api: { store: h.deps.store, release: { ...h.deps, runtime: swarm.runtime(h.runtime) } },
  h,
  swarm,
  close: async () => undefined,
}));

runSwarmMembersContract('the cloud API through the worker function', async (h, swarm) => {
  const { client, lambda } = workerBehindLambda(h, swarm);
  const members = new LambdaSwarmMembers({ functionName: 'selfdevop-worker', client });
  return {
    api: {
      store: h.deps.store,
      release: { ...h.deps, runtime: noSwarm(h.runtime) },
      swarmMembers: members,
    },
    h,
    swarm,
    close: async () => {
      lambda.restore();
    },
  };
});

describe('the cloud API through the worker function', () => {
  async function given() {
    const h = await setup({ replicas: 1 });
    await h.repos((r) =>
      r.nodes.insert(
        aNode({
          id: swarmNodeId,
          name: 'swarm',
          kind: 'swarm',
          dockerHost: 'unix:///run/sdo-node7/docker.sock',
          address: '10.213.0.17',
        }),
      ),
    );
    const swarm = new FakeSwarm();
    const behind = workerBehindLambda(h, swarm);
    return { h, swarm, ...behind };
  }
  const admin = { ...deployer, role: 'admin' as const };

  it('hands the call to the worker with who asked; refusals that need no manager never leave the API', async () => {
    const { h, client, lambda, invocations } = await given();
    const api = {
      store: h.deps.store,
      release: { ...h.deps, runtime: noSwarm(h.runtime) },
      swarmMembers: new LambdaSwarmMembers({ functionName: 'selfdevop-worker', client }),
    };
    await requestMemberDrain(api, admin, swarmNodeId, 'sdo-node9', { requestId: 'r1', ip: null });
    expect(invocations).toEqual([
      {
        type: swarmMembersInvocationType,
        op: 'drain',
        call: {
          principal: admin,
          nodeId: swarmNodeId,
          member: 'sdo-node9',
          ctx: { requestId: 'r1', ip: null },
        },
      },
    ]);
    await expect(
      requestMemberDrain(api, deployer, swarmNodeId, 'sdo-node9', null),
    ).rejects.toMatchObject({ kind: 'forbidden' });
    await expect(
      requestMemberDrain(api, admin, 'node_000001', 'sdo-node9', null),
    ).rejects.toMatchObject({ code: 'node_not_swarm' });
    expect(invocations).toHaveLength(1);
    lambda.restore();
  });

  it('says so with a 503 when the worker does not answer in time, and fails as the worker failed', async () => {
    const { h, swarm } = await given();
    const client = new LambdaClient({ region: 'eu-west-1' });
    const lambda = mockClient(client);
    lambda
      .on(InvokeCommand)
      .resolvesOnce({
        StatusCode: 200,
        FunctionError: 'Unhandled',
        Payload: new TextEncoder().encode('{"errorMessage":"boom"}') as never,
      })
      .callsFake(() => new Promise(() => undefined));
    const api = {
      store: h.deps.store,
      release: { ...h.deps, runtime: noSwarm(h.runtime) },
      swarmMembers: new LambdaSwarmMembers({
        functionName: 'selfdevop-worker',
        client,
        timeoutMs: 200,
      }),
    };
    await expect(requestMemberDrain(api, admin, swarmNodeId, 'sdo-node9', null)).rejects.toThrow(
      'the worker function failed (Unhandled): {"errorMessage":"boom"}',
    );
    await expect(
      requestMemberDrain(api, admin, swarmNodeId, 'sdo-node9', null),
    ).rejects.toMatchObject({
      kind: 'unavailable',
      code: 'swarm_worker_unavailable',
      message: expect.stringContaining(
        `did not answer within 0.2 s; a drain it started goes on there (GET /api/nodes/${swarmNodeId}/cluster`,
      ),
    });
    expect(swarm.members.every((m) => m.availability === 'active')).toBe(true);
    lambda.restore();
  });

  it('without a worker to ask, the cloud API says it reaches no engine', async () => {
    const { h } = await given();
    const api = { store: h.deps.store, release: { ...h.deps, runtime: noSwarm(h.runtime) } };
    await expect(
      requestMemberDrain(api, admin, swarmNodeId, 'sdo-node9', null),
    ).rejects.toMatchObject({ code: 'cluster_unreachable_here' });
  });
});
