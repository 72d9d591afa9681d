import type { NodeChecker, NodeCheckSession } from '../../core/nodes/checks.ts';
import type { Logger } from '../../core/ports.ts';
import { isScheduledEvent } from './events.ts';

/** What the handler reads of Lambda's context object. */
export interface InvocationTime {
  getRemainingTimeInMillis(): number;
}

/**
 * The node-checks function: an EventBridge rule fires it once a minute, and it runs one
 * session of node-check rounds (`NodeChecker.session`), ended by the invocation's remaining
 * time (`session.marginMs` before its timeout) or, with no Swarm node, after a few rounds.
 * Its own function, not a scheduled job on the worker's queue: a session lasting most of a
 * minute would hold up the jobs batched behind it there.
 */
export function createNodeChecksHandler(deps: {
  checker: Pick<NodeChecker, 'session'>;
  session: NodeCheckSession;
  logger: Logger;
}) {
  return async (event: unknown, context: InvocationTime) => {
    if (!isScheduledEvent(event))
      throw new Error('the node-checks function handles EventBridge scheduled events only');
    const began = Date.now();
    const out = await deps.checker.session(() => context.getRemainingTimeInMillis(), deps.session);
    deps.logger.info(
      {
        eventId: event.id,
        ...out,
        ms: Date.now() - began,
        leftMs: context.getRemainingTimeInMillis(),
      },
      'node checks session ended',
    );
    return out;
  };
}
