import type {
  BackupCodec,
  Clock,
  ContainerRuntime,
  EventQueue,
  IdGenerator,
  KeyVault,
  Logger,
  ObjectStore,
  Scheduler,
  Store,
} from '../ports.ts';
import type { EventPublisher } from '../webhooks/events.ts';

/** The queue of data services' long work (provisioning, removal): one message per change. */
export const dataServiceWorkQueue = 'data-service-work';

export interface DataServiceWorkMessage {
  orgId: string;
  dataServiceId: string;
  /**
   * `backup` takes the backup `backupId` names (made by the API in `running`), or, from a
   * schedule, a new one; `drill` restores `backupId` into a container with no network and
   * checks it; `restore` restores `backupId` into `targetId` (a new data service, or the
   * same one: in place, after a backup of its current state). `rotate` sets the pending
   * password in the engine and redeploys linked apps; `rotate-finish` retires Redis's old one.
   * `move` moves a shared database to a dedicated server (backup, restore, re-link, redeploy).
   * `upgrade` backs up, then swaps the server to the newer minor its record names.
   */
  op:
    | 'provision'
    | 'delete'
    | 'backup'
    | 'drill'
    | 'restore'
    | 'rotate'
    | 'rotate-finish'
    | 'move'
    | 'upgrade';
  backupId?: string;
  targetId?: string;
  /** `rotate-finish` (Redis): the redeploys it waits for, and the checks it has left. */
  releaseIds?: string[];
  attemptsLeft?: number;
  trigger?: 'schedule' | 'manual';
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
  /** Sends the drill after a backup (the release engine's queue). */
  queue?: EventQueue;
  /** Where backups go (local files or S3); backups are refused without one. */
  objects?: ObjectStore;
  backupCodec?: BackupCodec;
  /** Registers each data service's backup schedule; schedules are only stored without one. */
  scheduler?: Scheduler;
  config: {
    /** Deliveries of one message before the data service is marked failed instead of retried. */
    maxStepAttempts: number;
    /** Readiness checks before a new server counts as failed, one a second; 90 unless set. */
    dataReadyAttempts?: number;
    /** How long one dump, drill or restore may run; 2 hours unless set. */
    backupTimeoutMs?: number;
    /** How often a running move writes its heartbeat; a minute unless set. */
    moveHeartbeatMs?: number;
  };
}

export const dataWorkerActor = { actorType: 'system', actorId: 'data-service-worker' } as const;

/** The Scheduler's name for a data service's backups (one schedule each, replaced on change). */
export const backupScheduleName = (dataServiceId: string): string => `backup-${dataServiceId}`;
