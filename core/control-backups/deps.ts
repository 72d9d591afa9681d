import type {
  BackupCodec,
  Clock,
  ControlDatabase,
  EventQueue,
  IdGenerator,
  KeyVault,
  Logger,
  ObjectStore,
  Scheduler,
  Store,
} from '../ports.ts';

/** The queue of the control plane's own backups and drills (self-hosted workers consume it). */
export const controlBackupWorkQueue = 'control-backup-work';

/** The Scheduler's name for the control plane's backups (one schedule, replaced on change). */
export const controlBackupScheduleName = 'control-backup';

export interface ControlBackupWorkMessage {
  /** `backup` takes `backupId` (made by the API in `running`) or, from the schedule, a new one. */
  op: 'backup' | 'drill';
  backupId?: string;
  trigger?: 'schedule' | 'manual';
}

/** The events of the control plane's backups: no org's, so they go to the install's logs and metrics. */
export type ControlBackupEvent =
  'backup.completed' | 'backup.failed' | 'drill.passed' | 'drill.failed';

/** What the control-plane backups need; `database` is absent where the mode has none (cloud). */
export interface ControlBackupDeps {
  store: Store;
  vault: KeyVault;
  clock: Clock;
  ids: IdGenerator;
  logger: Logger;
  database?: ControlDatabase;
  objects?: ObjectStore;
  backupCodec?: BackupCodec;
  scheduler?: Scheduler;
  /** Sends the drill after a backup, and on-demand work. */
  queue?: EventQueue;
  /** Where an event goes besides the row (the composition root: logs and metrics). */
  onEvent?(event: ControlBackupEvent, data: Record<string, unknown>): void;
  config: {
    /** How long one dump or drill may run; 2 hours unless set. */
    timeoutMs?: number;
    /**
     * Why this mode keeps no control-plane backups of its own (the cloud: RDS does); the
     * API answers it as a 409 instead of queueing work that cannot run.
     */
    unavailableReason?: string;
  };
}
