import type { SqsBatchResponse, SqsQueue } from '../../adapters/queue/sqs.ts';
import {
  answerSwarmMembers,
  isSwarmMembersInvocation,
  type SwarmMembersAnswer,
  type SwarmMembersInvocation,
} from '../../adapters/swarm-members/wire.ts';
import type { Logger, MessageHandler, SwarmMembers } from '../../core/ports.ts';
import {
  handleScheduledJob,
  scheduledJobs,
  scheduledJobsQueue,
  workerHandlers,
  type WorkerSystem,
} from '../../core/queues.ts';
import { isSqsEvent, nameOfArn } from './events.ts';

export interface WorkerDeps {
  queue: Pick<SqsQueue, 'physicalNames' | 'handleBatch' | 'relayDelayed'>;
  /** One handler per logical queue this worker consumes. */
  handlers: Record<string, MessageHandler<never>>;
  logger: Logger;
  /**
   * Answers the cloud API's Swarm member calls (a direct invocation, adapters/swarm-members):
   * the use cases in-process, since this function reaches the managers.
   */
  swarmMembers?: SwarmMembers;
}

/**
 * The worker Lambda: SQS invokes it with a batch from one queue (an event source mapping
 * per queue, with ReportBatchItemFailures). FIFO batches keep their order and report the
 * first failure and all after it; batches from a delay queue are relayed into their FIFO
 * queue when due. The API also invokes it directly with a Swarm member call, answered in
 * the invocation.
 */
export interface WorkerHandler {
  (event: SwarmMembersInvocation): Promise<SwarmMembersAnswer>;
  (event: unknown): Promise<SqsBatchResponse>;
}

export function createWorkerHandler(deps: WorkerDeps): WorkerHandler {
  const byPhysical = new Map<string, { queue: string; kind: 'main' | 'delay' }>();
  for (const queue of Object.keys(deps.handlers)) {
    const names = deps.queue.physicalNames(queue);
    byPhysical.set(names.main, { queue, kind: 'main' });
    byPhysical.set(names.delay, { queue, kind: 'delay' });
  }
  const handler = async (event: unknown): Promise<SqsBatchResponse | SwarmMembersAnswer> => {
    if (deps.swarmMembers && isSwarmMembersInvocation(event))
      return answerSwarmMembers(deps.swarmMembers, event);
    if (!isSqsEvent(event))
      throw new Error('the worker handles SQS events and Swarm member calls only');
    const first = event.Records[0];
    if (!first) return { batchItemFailures: [] };
    const physical = nameOfArn(first.eventSourceARN ?? '');
    const target = byPhysical.get(physical);
    if (!target) {
      // A mapping to a queue this build has no handler for: keep the messages for a build that has.
      deps.logger.error(
        { queue: physical, records: event.Records.length },
        'no handler for this queue; the batch is returned',
      );
      return { batchItemFailures: event.Records.map((r) => ({ itemIdentifier: r.messageId })) };
    }
    if (target.kind === 'delay') return deps.queue.relayDelayed(event.Records);
    const handler = deps.handlers[target.queue] as MessageHandler<unknown>;
    return deps.queue.handleBatch(target.queue, event.Records, handler);
  };
  return handler as WorkerHandler;
}

/**
 * What the worker Lambda consumes: the worker queues of core/queues.ts, and the
 * scheduled-jobs queue the schedule Lambda feeds (EventBridge rule `<prefix><job>`).
 */
export function sqsWorkerHandlers(system: WorkerSystem): Record<string, MessageHandler<never>> {
  return {
    ...workerHandlers(system),
    [scheduledJobsQueue]: handleScheduledJob(
      scheduledJobs(system),
      system.logger,
    ) as MessageHandler<never>,
  };
}
