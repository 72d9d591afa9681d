/**
 * How the cloud API hands a Swarm member call to the worker function and reads its answer
 * (adapters/swarm-members/lambda.ts sends, functions/lambda/worker-handler.ts answers). A
 * CoreError crosses as its kind, code, message and details and is raised again on the API
 * side, so the caller gets the 4xx the self-hosted API gives, word for word.
 */
import { CoreError, isCoreError, type ErrorKind } from '../../core/errors.ts';
import type { SwarmMembers, SwarmMembersCall } from '../../core/ports.ts';

/** Marks the worker's direct invocations apart from the SQS batches it also handles. */
export const swarmMembersInvocationType = 'selfdevop.swarm-members';

export type SwarmMembersOp = keyof SwarmMembers;
const ops: readonly SwarmMembersOp[] = ['read', 'drain', 'undrain'];

export interface SwarmMembersInvocation {
  type: typeof swarmMembersInvocationType;
  op: SwarmMembersOp;
  call: SwarmMembersCall;
}

export type SwarmMembersAnswer =
  | { ok: true; result: unknown }
  | { ok: false; error: { kind: ErrorKind; code: string; message: string; details?: unknown } };

export function isSwarmMembersInvocation(e: unknown): e is SwarmMembersInvocation {
  const o = e as Partial<SwarmMembersInvocation> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    o.type === swarmMembersInvocationType &&
    ops.includes(o.op as SwarmMembersOp) &&
    typeof o.call?.nodeId === 'string' &&
    typeof o.call.member === 'string' &&
    typeof o.call.principal === 'object' &&
    o.call.principal !== null
  );
}

/**
 * Runs one invocation on `port` (the use cases, in the worker). A CoreError is an answer;
 * anything else is thrown, so the function reports it failed, as an API would answer 500.
 */
export async function answerSwarmMembers(
  port: SwarmMembers,
  invocation: SwarmMembersInvocation,
): Promise<SwarmMembersAnswer> {
  try {
    return { ok: true, result: await port[invocation.op](invocation.call) };
  } catch (e) {
    if (!isCoreError(e)) throw e;
    return {
      ok: false,
      error: {
        kind: e.kind,
        code: e.code,
        message: e.message,
        ...(e.details === undefined ? {} : { details: e.details }),
      },
    };
  }
}

/** The worker's answer as a result, or its CoreError raised again here. */
export function resultOf<T>(answer: SwarmMembersAnswer): T {
  if (answer.ok) return answer.result as T;
  const { kind, code, message, details } = answer.error;
  throw new CoreError(kind, code, message, details);
}
