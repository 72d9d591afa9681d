/**
 * SwarmMembers for the cloud API, which reaches no tenant engine: each call is a synchronous
 * invocation (RequestResponse) of the worker function, the one that reaches the managers,
 * which runs the use case and answers (wire.ts). The only file that imports
 * @aws-sdk/client-lambda, and only on the first call, so a cold start does not parse it.
 *
 * The wait is bounded below API Gateway's 30 s: a drain waits for the edge to finish what
 * it had sent the member's tasks, which may take longer. An invocation keeps running when
 * its caller stops waiting, so the 503 then says the change goes on, and where to see it.
 */
import type * as LambdaSdk from '@aws-sdk/client-lambda';
import type { LambdaClient, LambdaClientConfig } from '@aws-sdk/client-lambda';
import { isCoreError, Unavailable } from '../../core/errors.ts';
import type { SwarmMembers, SwarmMembersCall } from '../../core/ports.ts';
import { exportsOf, onFirstUse } from '../on-first-use.ts';
import {
  resultOf,
  swarmMembersInvocationType,
  type SwarmMembersAnswer,
  type SwarmMembersInvocation,
  type SwarmMembersOp,
} from './wire.ts';

export interface LambdaSwarmMembersOptions {
  /** The worker function's name or ARN (WORKER_FUNCTION_NAME). */
  functionName: string;
  client?: LambdaClient | LambdaClientConfig;
  /** The longest the API waits for the worker's answer; 25 s unless set. */
  timeoutMs?: number;
}

type LambdaSdkExports = Omit<typeof LambdaSdk, 'default'>;
const loadSdk: () => Promise<LambdaSdkExports> = onFirstUse(() =>
  import('@aws-sdk/client-lambda').then(exportsOf),
);

function isLambdaClient(c: LambdaSwarmMembersOptions['client']): c is LambdaClient {
  return typeof (c as LambdaClient | undefined)?.send === 'function';
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

export class LambdaSwarmMembers implements SwarmMembers {
  private readonly options: LambdaSwarmMembersOptions;
  private loaded?: Promise<{ sdk: LambdaSdkExports; client: LambdaClient }>;

  constructor(options: LambdaSwarmMembersOptions) {
    this.options = options;
  }

  read(call: SwarmMembersCall) {
    return this.invoke<Awaited<ReturnType<SwarmMembers['read']>>>('read', call);
  }

  drain(call: SwarmMembersCall) {
    return this.invoke<Awaited<ReturnType<SwarmMembers['drain']>>>('drain', call);
  }

  undrain(call: SwarmMembersCall) {
    return this.invoke<Awaited<ReturnType<SwarmMembers['undrain']>>>('undrain', call);
  }

  /** Closes the client's connections; one never used has none. */
  async destroy(): Promise<void> {
    const loaded = await this.loaded?.catch(() => undefined);
    loaded?.client.destroy();
  }

  private async invoke<T>(op: SwarmMembersOp, call: SwarmMembersCall): Promise<T> {
    const { sdk, client } = await this.sdk();
    const timeoutMs = this.options.timeoutMs ?? 25_000;
    const invocation: SwarmMembersInvocation = { type: swarmMembersInvocationType, op, call };
    let out: LambdaSdk.InvokeCommandOutput;
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abort.abort();
        reject(
          new Unavailable(
            'swarm_worker',
            `the worker function did not answer within ${timeoutMs / 1000} s; a ${op} it started goes on there (GET /api/nodes/${call.nodeId}/cluster shows each member's availability)`,
          ),
        );
      }, timeoutMs);
    });
    try {
      out = await Promise.race([
        client.send(
          new sdk.InvokeCommand({
            FunctionName: this.options.functionName,
            InvocationType: 'RequestResponse',
            Payload: new TextEncoder().encode(JSON.stringify(invocation)),
          }),
          { abortSignal: abort.signal },
        ),
        late,
      ]);
    } catch (e) {
      if (isCoreError(e)) throw e;
      throw new Unavailable(
        'swarm_worker',
        `the worker function could not be invoked: ${messageOf(e)}`,
      );
    } finally {
      clearTimeout(timer);
    }
    const text = new TextDecoder().decode(out.Payload ?? new Uint8Array());
    // The worker threw something that is no CoreError: a failure, as it is self-hosted (500).
    if (out.FunctionError)
      throw new Error(`the worker function failed (${out.FunctionError}): ${text.slice(0, 500)}`);
    return resultOf<T>(JSON.parse(text) as SwarmMembersAnswer);
  }

  private sdk(): Promise<{ sdk: LambdaSdkExports; client: LambdaClient }> {
    this.loaded ??= loadSdk().then((sdk) => ({
      sdk,
      client: isLambdaClient(this.options.client)
        ? this.options.client
        : new sdk.LambdaClient(this.options.client ?? {}),
    }));
    return this.loaded;
  }
}
