/**
 * Tests describe a self-hosted system by settings (one object, with tuning beside the
 * variables); this turns them into what production builds from: the environment, read by
 * the real config module (so every value passes its validation), plus the overrides.
 */
import { fromEnv, requireSettings } from '../../adapters/modes/config.ts';
import {
  fromSelfhost,
  type SelfhostOptions,
  type SelfhostOverrides,
  type SelfhostSystem,
} from '../../adapters/modes/selfhost.ts';
import type { SelfhostConfig } from '../../adapters/modes/config.ts';
import type { SignupMode } from '../../core/deps.ts';

export interface SelfhostTestSettings extends Omit<SelfhostOverrides, 'edgeDns'> {
  databaseUrl: string;
  jwtSecret: string;
  encryptionKeyFile: string;
  signupMode: SignupMode;
  edgeDomain: string;
  caddyAdminUrl: string;
  caddyServer?: string;
  edgeHttpListen?: string;
  /**
   * Dynamic upstreams: `listen` (port 0 for any) serves the DNS in this process; `address`
   * alone points Caddy at another process's. Absent: static upstreams.
   */
  edgeDns?: { listen?: string; address?: string; zone?: string; refreshMs?: number };
  edgeTlsAddress?: string;
  edgeIpv4?: string[];
  dnsServers?: string[];
  /** WEBHOOKS_ALLOW_PRIVATE: webhooks may target private ranges (refused with open signup). */
  webhooksAllowPrivate?: boolean;
  /** SMTP_URL: where invites are mailed (a test's SMTP server on loopback). */
  smtpUrl?: string;
  /** PUBLIC_URL: the dashboard's address in emailed links. */
  publicUrl?: string;
  /** PROMETHEUS_URL: the charts' Prometheus (a test's on loopback); 127.0.0.1:9090 unless set. */
  prometheusUrl?: string;
  /** ALERT_RECEIVER_TOKEN: what Prometheus and Alertmanager present. */
  alertReceiverToken?: string;
  /** OBJECTS_DIR: where backups are stored (a test's temporary folder). */
  objectsDir?: string;
  /** OBJECTS_S3_*: an S3-compatible store instead (a test's s3rver), direct or not. */
  objectsS3?: {
    bucket: string;
    endpoint: string;
    accessKeyId: string;
    secretAccessKey: string;
    direct?: boolean;
  };
  /** DATA_IMAGES: data-service images beyond the build's own (`engine:version=image,…`). */
  dataImages?: string;
  /** CONTROL_BACKUP_DATABASE_URL: the superuser's URL pg_dump backs the control plane up with. */
  controlBackupDatabaseUrl?: string;
  maxBodyBytes: number;
  dbPoolMax: number;
  version: string;
  logLevel?: string;
  /** The usage collector's interval; 0 (off) unless a test measures usage. */
  statsIntervalSeconds?: number;
  /** Where the usage endpoint listens when the collector runs. */
  statsListen?: string;
  /** The node probe's image (a test image with busybox). */
  nodeProbeImage?: string;
}

/** The environment, options and overrides the settings stand for. */
export function selfhostConfigOf(settings: SelfhostTestSettings): {
  env: Record<string, string>;
  config: SelfhostConfig;
  options: SelfhostOptions;
  overrides: SelfhostOverrides;
} {
  const {
    databaseUrl,
    jwtSecret,
    encryptionKeyFile,
    signupMode,
    edgeDomain,
    caddyAdminUrl,
    caddyServer,
    edgeHttpListen,
    edgeDns,
    edgeTlsAddress,
    edgeIpv4,
    dnsServers,
    webhooksAllowPrivate,
    smtpUrl,
    publicUrl,
    prometheusUrl,
    alertReceiverToken,
    objectsDir,
    objectsS3,
    dataImages,
    controlBackupDatabaseUrl,
    maxBodyBytes,
    dbPoolMax,
    version,
    logLevel,
    statsIntervalSeconds,
    statsListen,
    nodeProbeImage,
    ...overrides
  } = settings;
  const env: Record<string, string | undefined> = {
    MODE: 'selfhost',
    DATABASE_URL: databaseUrl,
    JWT_SECRET: jwtSecret,
    ENCRYPTION_KEY_FILE: encryptionKeyFile,
    SIGNUP_MODE: signupMode,
    EDGE_DOMAIN: edgeDomain,
    CADDY_ADMIN_URL: caddyAdminUrl,
    CADDY_SERVER: caddyServer,
    EDGE_HTTP_LISTEN: edgeHttpListen,
    EDGE_UPSTREAMS: edgeDns ? 'dynamic' : 'static',
    EDGE_DNS_LISTEN: edgeDns?.listen,
    EDGE_DNS_ADDRESS: edgeDns?.address,
    EDGE_TLS_ADDRESS: edgeTlsAddress,
    EDGE_IPV4: edgeIpv4?.join(','),
    DNS_SERVERS: dnsServers?.join(','),
    WEBHOOKS_ALLOW_PRIVATE:
      webhooksAllowPrivate === undefined ? undefined : String(webhooksAllowPrivate),
    SMTP_URL: smtpUrl,
    MAIL_FROM: smtpUrl ? 'selfdevop@example.com' : undefined,
    PUBLIC_URL: publicUrl,
    PROMETHEUS_URL: prometheusUrl,
    ALERT_RECEIVER_TOKEN: alertReceiverToken,
    OBJECTS_DIR: objectsDir,
    OBJECTS_S3_BUCKET: objectsS3?.bucket,
    OBJECTS_S3_ENDPOINT: objectsS3?.endpoint,
    OBJECTS_S3_ACCESS_KEY_ID: objectsS3?.accessKeyId,
    OBJECTS_S3_SECRET_ACCESS_KEY: objectsS3?.secretAccessKey,
    OBJECTS_S3_DIRECT: objectsS3 ? String(objectsS3.direct ?? false) : undefined,
    DATA_IMAGES: dataImages,
    CONTROL_BACKUP_DATABASE_URL: controlBackupDatabaseUrl,
    MAX_BODY_BYTES: String(maxBodyBytes),
    DB_POOL_MAX: String(dbPoolMax),
    LOG_LEVEL: logLevel,
    STATS_INTERVAL_SECONDS: String(statsIntervalSeconds ?? 0),
    STATS_LISTEN: statsListen,
    NODE_PROBE_IMAGE: nodeProbeImage,
    NODE_PROBE_SECONDS: nodeProbeImage ? '15' : undefined,
  };
  const given = Object.fromEntries(
    Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined),
  );
  const config = requireSettings(fromEnv(given), 'a test system', [
    'DATABASE_URL',
    'JWT_SECRET',
    'ENCRYPTION_KEY_FILE',
  ]);
  return {
    env: given,
    config,
    // Without `listen` the DNS is another process's, as for an API beside a worker.
    options: { role: edgeDns && !edgeDns.listen ? 'api' : 'all', version },
    overrides: {
      ...overrides,
      ...(edgeDns ? { edgeDns: { zone: edgeDns.zone, refreshMs: edgeDns.refreshMs } } : {}),
    },
  };
}

/** fromSelfhost, built from test settings. */
export function fromSelfhostSettings(settings: SelfhostTestSettings): Promise<SelfhostSystem> {
  const { config, options, overrides } = selfhostConfigOf(settings);
  return fromSelfhost(config, options, overrides);
}
