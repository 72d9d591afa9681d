/**
 * The self-hosted composition root: every port wired to its self-hosted adapter, in plain
 * TypeScript (Kamal commander.rb style). Nothing here decides anything; it only connects.
 */
import { RateLimiter } from '../../core/rate-limit.ts';
import type { Logger } from '../../core/ports.ts';
import type { SignupMode } from '../../core/use-cases/deps.ts';
import type { ApiDeps } from '../../functions/api/deps.ts';
import { LocalJwtAuth } from '../auth/local-jwt.ts';
import { SystemClock } from '../clock/system.ts';
import { fromDatabaseUrl, toPgBossDb } from '../db/postgres.ts';
import { RandomIds } from '../ids/random.ts';
import { fromPino } from '../logger/pino.ts';
import { PrometheusMetrics } from '../metrics/prometheus.ts';
import { fromPgBoss, type PgBossConfig } from '../queue/pg-boss.ts';
import { PostgresStore } from '../store/postgres.ts';
import { AesFileKeyVault } from '../vault/aes-file.ts';

export interface SelfhostSettings {
  databaseUrl: string;
  jwtSecret: string;
  encryptionKeyFile: string;
  signupMode: SignupMode;
  edgeDomain: string;
  caddyAdminUrl: string;
  maxBodyBytes: number;
  dbPoolMax: number;
  version: string;
  logLevel?: string;
  /** Where JSON log lines go; stdout unless set (tests capture them). */
  logDestination?: { write(line: string): void };
  bcryptCost?: number;
  queue?: Partial<PgBossConfig>;
  /** Whether this process runs the deploy workers (consumers of the release queues). */
  runWorkers?: boolean;
  /** Login attempts allowed per account per 15 minutes, and per IP per minute. */
  loginLimits?: { perAccount: number; perIp: number };
}

export interface SelfhostSystem {
  api: ApiDeps;
  logger: Logger;
  vault: AesFileKeyVault;
  close(): Promise<void>;
}

export async function fromSelfhost(settings: SelfhostSettings): Promise<SelfhostSystem> {
  const logger = fromPino({ level: settings.logLevel ?? 'info', destination: settings.logDestination });
  const clock = new SystemClock();
  const db = fromDatabaseUrl(settings.databaseUrl, {
    max: settings.dbPoolMax,
    onIdleError: (e) => logger.warn({ err: e.message }, 'database connection lost; the pool reconnects'),
  });
  const store = new PostgresStore(db);
  const bossDb = toPgBossDb(settings.databaseUrl, { max: 3 });
  const queues = await fromPgBoss({ db: bossDb, logger: logger.child({ component: 'queue' }), ...settings.queue });
  const vault = await AesFileKeyVault.fromKeyFiles(settings.encryptionKeyFile);
  const auth = new LocalJwtAuth({ jwtSecret: settings.jwtSecret, bcryptCost: settings.bcryptCost, clock });
  const limits = settings.loginLimits ?? { perAccount: 10, perIp: 100 };
  const api: ApiDeps = {
    store,
    auth,
    vault,
    ids: new RandomIds(),
    clock,
    logger,
    queue: queues.queue,
    metrics: new PrometheusMetrics(),
    loginLimits: {
      perAccount: new RateLimiter(limits.perAccount, 15 * 60_000, clock),
      perIp: new RateLimiter(limits.perIp, 60_000, clock),
    },
    config: { signupMode: settings.signupMode, edgeDomain: settings.edgeDomain },
    api: { maxBodyBytes: settings.maxBodyBytes, version: settings.version },
  };
  return {
    api,
    logger,
    vault,
    async close() {
      await queues.stop();
      await bossDb.close();
      await store.close();
      await db.close();
    },
  };
}
