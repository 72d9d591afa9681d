import type { Clock, ContainerRuntime, IdGenerator, KeyVault, Logger, Store } from '../ports.ts';
import type { EventPublisher } from '../webhooks/events.ts';

/** The queue of data services' long work (provisioning, removal): one message per change. */
export const dataServiceWorkQueue = 'data-service-work';

export interface DataServiceWorkMessage {
  orgId: string;
  dataServiceId: string;
  op: 'provision' | 'delete';
}

/** What the worker needs: the release engine's ports are a superset. */
export interface DataServiceDeps {
  store: Store;
  runtime: ContainerRuntime;
  vault: KeyVault;
  clock: Clock;
  ids: IdGenerator;
  logger: Logger;
  events?: EventPublisher;
  config: {
    /** Deliveries of one message before the data service is marked failed instead of retried. */
    maxStepAttempts: number;
    /** Readiness checks before a new server counts as failed, one a second; 90 unless set. */
    dataReadyAttempts?: number;
  };
}

export const dataWorkerActor = { actorType: 'system', actorId: 'data-service-worker' } as const;
