/**
 * EventQueue and Scheduler on pg-boss 12, for the self-hosted mode: the queue lives in the
 * same PostgreSQL as the control plane, in pg-boss's own schema (`pgboss` by default).
 * This is the only file that imports pg-boss.
 *
 * How the port's promises map onto pg-boss:
 * - every queue is a `key_strict_fifo` queue, so the database itself (a unique index) keeps
 *   at most one message per group active, and a group's messages run in send order, retries
 *   included, on any number of workers. A message without a group gets a key of its own.
 * - idempotency keys become a deterministic job id; a duplicate insert is dropped by the
 *   primary key and send() returns null. This holds while the first job's row exists
 *   (until `deleteAfterSeconds` after it finished), which is longer than SQS's 5 minutes.
 * - `maxAttempts` → `retryLimit = maxAttempts - 1`; exhausted messages are copied to
 *   `<queue>__dlq`. A strict-FIFO queue keeps a failed message at the head of its group, so
 *   consumers delete failed heads (their copy is in the dead-letter queue) every
 *   `reapIntervalSeconds`; the group then moves on, as an SQS FIFO group does.
 * - a worker that dies mid-message leaves the job active; the supervisor fails it after
 *   `expireInSeconds` and it is delivered again with the next attempt number.
 */
import { createHash, randomUUID } from 'node:crypto';
import { PgBoss } from 'pg-boss';
import type { ConstructorOptions, Job } from 'pg-boss';
import { validateTimeZone } from '../../core/jobs/cron.ts';
import { InvalidInput, Unavailable } from '../../core/errors.ts';
import type {
  EventQueue,
  Logger,
  MessageHandler,
  QueueMessage,
  ScheduleOptions,
  Scheduler,
  SendOptions,
} from '../../core/ports.ts';
import { assertName, assertSendOptions, deadLetterSuffix } from './names.ts';

/** What pg-boss needs of a database client; the Store's pool helper fits it. */
export interface SqlExecutor {
  executeSql(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

export interface PgBossConfig {
  /** Either a connection string (pg-boss opens its own pool) or an executor to share. */
  connectionString?: string;
  db?: SqlExecutor;
  /** pg-boss installs and migrates its tables here. */
  schema?: string;
  /** Pool size when pg-boss opens its own pool. */
  maxConnections?: number;
  /** How often an idle consumer looks for work; pg-boss's minimum is 0.5. */
  pollingIntervalSeconds?: number;
  /** Deliveries before a message is dead-lettered, when send() does not say. */
  defaultMaxAttempts?: number;
  /** First retry delay; doubles (with jitter) per attempt up to retryDelayMaxSeconds. 0 retries at once. */
  retryDelaySeconds?: number;
  retryDelayMaxSeconds?: number;
  /** A handler running longer than this is presumed dead and its message is redelivered. */
  expireInSeconds?: number;
  /**
   * When set (≥ 10), a running handler's worker refreshes a heartbeat on its message, and a
   * message whose heartbeat stops (the worker died) is redelivered after this long, however
   * long expireInSeconds is. Lets long steps (migrations) run for an hour while a crashed
   * worker's step resumes within seconds.
   */
  heartbeatSeconds?: number;
  /** How often expired messages are failed and queue counts refreshed (pg-boss supervise/monitor). */
  superviseIntervalSeconds?: number;
  /** Whether this process evaluates cron schedules (any number of processes may; one fires each). */
  runSchedules?: boolean;
  /** How often schedules are evaluated and their sends forwarded. */
  cronIntervalSeconds?: number;
  /** How often consumers free groups held by a dead-lettered message. */
  reapIntervalSeconds?: number;
  logger?: Logger;
}

export const defaultPgBossConfig = {
  schema: 'pgboss',
  pollingIntervalSeconds: 2,
  defaultMaxAttempts: 5,
  retryDelaySeconds: 2,
  retryDelayMaxSeconds: 300,
  expireInSeconds: 900,
  superviseIntervalSeconds: 60,
  runSchedules: true,
  cronIntervalSeconds: 30,
  reapIntervalSeconds: 30,
} as const;

type ResolvedConfig = Omit<
  Required<PgBossConfig>,
  'connectionString' | 'db' | 'maxConnections' | 'logger' | 'heartbeatSeconds'
> &
  Pick<PgBossConfig, 'connectionString' | 'db' | 'maxConnections' | 'logger' | 'heartbeatSeconds'>;

/** Every job carries its payload wrapped, so any JSON value (not only objects) can be sent. */
interface Envelope {
  payload: unknown;
}

/** A time-ordered-enough, deterministic UUID for an idempotency key, scoped to its queue. */
function idFromKey(queue: string, key: string): string {
  const h = createHash('sha256').update(`${queue}\u0000${key}`).digest('hex');
  // Shaped as a version-8 (custom) UUID so PostgreSQL's uuid type takes it.
  const variant = ((parseInt(h.slice(16, 18), 16) & 0x3f) | 0x80).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(18, 20)}-${h.slice(20, 32)}`;
}

function messageKey(group: string | undefined, id: string): string {
  return group === undefined ? `m:${id}` : `g:${group}`;
}

function errorMessage(e: unknown): string {
  // pg-boss also emits plain objects carrying a message (e.g. a failed shutdown fail()).
  if (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as { message?: unknown }).message === 'string'
  ) {
    return (e as { message: string }).message;
  }
  return String(e);
}

export class PgBossQueue implements EventQueue {
  readonly boss: PgBoss;
  private readonly config: ResolvedConfig;
  private readonly queues = new Map<string, Promise<void>>();

  constructor(boss: PgBoss, config: ResolvedConfig) {
    this.boss = boss;
    this.config = config;
  }

  /** Creates the queue and its dead-letter queue once per process; safe to call concurrently. */
  ensureQueue(queue: string): Promise<void> {
    assertName('queue', queue);
    let ready = this.queues.get(queue);
    if (!ready) {
      ready = this.createQueue(queue);
      this.queues.set(queue, ready);
      ready.catch(() => this.queues.delete(queue));
    }
    return ready;
  }

  private async createQueue(queue: string): Promise<void> {
    const c = this.config;
    const deadLetter = `${queue}${deadLetterSuffix}`;
    const backoff = c.retryDelaySeconds > 0;
    await this.boss.createQueue(deadLetter, { policy: 'standard', retryLimit: 0 });
    await this.boss.createQueue(queue, {
      policy: 'key_strict_fifo',
      // A sent message wakes idle workers at once (when the db can LISTEN); polling stays the backstop.
      notify: true,
      deadLetter,
      retryLimit: c.defaultMaxAttempts - 1,
      retryDelay: c.retryDelaySeconds,
      retryBackoff: backoff,
      ...(backoff ? { retryDelayMax: c.retryDelayMaxSeconds } : {}),
      expireInSeconds: c.expireInSeconds,
      ...(c.heartbeatSeconds ? { heartbeatSeconds: c.heartbeatSeconds } : {}),
    });
  }

  async send<T>(queue: string, payload: T, options: SendOptions = {}): Promise<string | null> {
    assertSendOptions(options);
    await this.ensureQueue(queue);
    const id =
      options.idempotencyKey === undefined
        ? randomUUID()
        : idFromKey(queue, options.idempotencyKey);
    const data: Envelope = { payload };
    return this.boss.send(queue, data, {
      id,
      singletonKey: messageKey(options.group, id),
      ...(options.delaySeconds ? { startAfter: options.delaySeconds } : {}),
      ...(options.maxAttempts !== undefined ? { retryLimit: options.maxAttempts - 1 } : {}),
    });
  }

  async consume<T>(
    queue: string,
    handler: MessageHandler<T>,
    options: { concurrency?: number } = {},
  ): Promise<() => Promise<void>> {
    await this.ensureQueue(queue);
    // One pg-boss worker per unit of concurrency, each knowing its own id: a worker that
    // just finished a message is told to fetch again at once instead of sleeping a polling
    // interval, so the next step of a release (released only when this one completes, by
    // the group's strict FIFO) starts in milliseconds.
    const workIds: string[] = [];
    for (let i = 0; i < Math.max(1, options.concurrency ?? 1); i++) {
      let workId = '';
      workId = await this.boss.work<Envelope>(
        queue,
        {
          batchSize: 1,
          localConcurrency: 1,
          pollingIntervalSeconds: this.config.pollingIntervalSeconds,
          // NOTIFY covers sends, not delayed messages or retries coming due: those still
          // need the normal poll, so it must not relax to pg-boss's 30 s notify backstop.
          notifyPollingIntervalSeconds: this.config.pollingIntervalSeconds,
        },
        async (jobs: Job<Envelope>[]) => {
          for (const job of jobs) {
            const message: QueueMessage<T> = {
              id: job.id,
              payload: job.data.payload as T,
              attempt: job.retryCount + 1,
            };
            await handler(message);
          }
          this.boss.notifyWorker(workId);
        },
      );
      workIds.push(workId);
    }
    const reaper = setInterval(() => void this.reap(queue), this.config.reapIntervalSeconds * 1000);
    reaper.unref();
    let stopped: Promise<void> | null = null;
    return () => {
      // offWork with wait resolves once the handlers it started have settled their jobs.
      stopped ??= (async () => {
        clearInterval(reaper);
        await Promise.all(workIds.map((id) => this.boss.offWork(queue, { id, wait: true })));
      })();
      return stopped;
    };
  }

  private reaping = new Set<string>();

  /** Deletes failed group heads; pg-boss has already copied each to the dead-letter queue. */
  async reap(queue: string): Promise<number> {
    if (this.reaping.has(queue)) return 0;
    this.reaping.add(queue);
    try {
      let removed = 0;
      for (const key of await this.boss.getBlockedKeys(queue)) {
        const failed = (await this.boss.findJobs(queue, { key })).filter(
          (j) => j.state === 'failed',
        );
        if (failed.length > 0) {
          await this.boss.deleteJob(
            queue,
            failed.map((j) => j.id),
          );
          removed += failed.length;
        }
      }
      return removed;
    } catch (e) {
      this.config.logger?.warn(
        { err: errorMessage(e), queue },
        'freeing dead-lettered groups failed',
      );
      return 0;
    } finally {
      this.reaping.delete(queue);
    }
  }

  /** Messages waiting, as of pg-boss's last monitor pass (superviseIntervalSeconds). */
  async depth(queue: string): Promise<number> {
    assertName('queue', queue);
    const q = await this.boss.getQueue(queue);
    return q?.queuedCount ?? 0;
  }

  /** Payloads of the messages given up on in `queue`, oldest first. */
  async deadLetters(queue: string): Promise<unknown[]> {
    await this.ensureQueue(queue);
    const jobs = await this.boss.findJobs<Envelope>(`${queue}${deadLetterSuffix}`);
    return jobs.map((j) => j.data.payload);
  }

  async ping(): Promise<void> {
    try {
      await this.boss.getDb().executeSql('select 1');
    } catch (e) {
      throw new Unavailable('queue', errorMessage(e));
    }
  }
}

export class PgBossScheduler implements Scheduler {
  private readonly queue: PgBossQueue;

  constructor(queue: PgBossQueue) {
    this.queue = queue;
  }

  // pg-boss schedules are keyed (queue, key) and send to the queue they are named after, so
  // the schedule's name is the key and the target queue is the pg-boss schedule name.
  async schedule(
    name: string,
    cron: string,
    queue: string,
    payload?: unknown,
    options?: ScheduleOptions,
  ): Promise<void> {
    assertName('schedule', name);
    const boss = this.queue.boss;
    const tz = validateTimeZone(options?.timeZone ?? 'UTC');
    try {
      // Reads the expression in process, so a typo is refused before anything is stored.
      boss.previewSchedule(cron, { tz, count: 1, from: new Date() });
    } catch (e) {
      throw new InvalidInput(`cron ${JSON.stringify(cron)} is not valid: ${errorMessage(e)}`);
    }
    await this.queue.ensureQueue(queue);
    const data: Envelope = { payload: payload ?? null };
    await boss.schedule(queue, cron, data, {
      tz,
      key: name,
      // One key per schedule: its runs are serialized, never overlapping one another.
      singletonKey: `s:${name}`,
    });
    for (const s of await boss.getSchedules()) {
      if (s.key === name && s.name !== queue) await boss.unschedule(s.name, s.key);
    }
  }

  async unschedule(name: string): Promise<void> {
    assertName('schedule', name);
    const boss = this.queue.boss;
    for (const s of await boss.getSchedules()) {
      if (s.key === name) await boss.unschedule(s.name, s.key);
    }
  }

  /** Schedules as stored: name, cron, target queue and payload. */
  async list(): Promise<
    { name: string; cron: string; queue: string; payload: unknown; timeZone?: string }[]
  > {
    const rows = await this.queue.boss.getSchedules();
    return rows
      .filter((s) => s.key !== '')
      .map((s) => ({
        name: s.key,
        cron: s.cron,
        queue: s.name,
        payload: (s.data as Envelope | undefined)?.payload ?? null,
        ...(s.timezone && s.timezone !== 'UTC' ? { timeZone: s.timezone } : {}),
      }));
  }
}

export interface PgBossQueueSystem {
  queue: PgBossQueue;
  scheduler: PgBossScheduler;
  /** Stops consumers (waiting for in-flight handlers unless graceful is false) and closes the pool. */
  stop(options?: { graceful?: boolean }): Promise<void>;
}

/**
 * Starts pg-boss (installing or migrating its schema) and returns the queue and scheduler.
 * @example const { queue, scheduler, stop } = await fromPgBoss({ connectionString: env.DATABASE_URL });
 */
export async function fromPgBoss(config: PgBossConfig): Promise<PgBossQueueSystem> {
  if (!config.connectionString && !config.db) {
    throw new Error('fromPgBoss needs connectionString or db');
  }
  const c: ResolvedConfig = { ...defaultPgBossConfig, ...stripUndefined(config) };
  const options: ConstructorOptions = {
    schema: c.schema,
    schedule: c.runSchedules,
    useListenNotify: true,
    cronMonitorIntervalSeconds: c.cronIntervalSeconds,
    cronWorkerIntervalSeconds: c.cronIntervalSeconds,
    superviseIntervalSeconds: c.superviseIntervalSeconds,
    monitorIntervalSeconds: c.superviseIntervalSeconds,
    ...(c.db ? { db: c.db as ConstructorOptions['db'] } : { connectionString: c.connectionString }),
    ...(c.maxConnections ? { max: c.maxConnections } : {}),
  };
  const boss = new PgBoss(options);
  // pg-boss reports background failures as events; without a listener Node would throw them.
  boss.on('error', (e: unknown) => {
    if (c.logger) c.logger.error({ err: errorMessage(e) }, 'pg-boss background error');
    else console.error('pg-boss background error:', errorMessage(e));
  });
  await boss.start();
  const queue = new PgBossQueue(boss, c);
  return {
    queue,
    scheduler: new PgBossScheduler(queue),
    stop: (options = {}) =>
      boss.stop({ graceful: options.graceful ?? true, timeout: c.expireInSeconds * 1000 }),
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
