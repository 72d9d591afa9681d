/**
 * The release engine's ports for suites (and benches) that deploy onto real Docker Engines
 * behind a real Caddy reading dynamic upstreams from selfdevop's own DNS server, as installs
 * do; everything else in memory. The caller owns Caddy and closes the DNS server.
 */
import { SystemClock } from '../../adapters/clock/system.ts';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { startUpstreamDns, type UpstreamDnsServer } from '../../adapters/edge/upstream-dns.ts';
import { MemoryUpstreamRegistry } from '../../adapters/edge/upstreams-memory.ts';
import { SequenceIds } from '../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { HttpHealthProbe } from '../../adapters/probe/http.ts';
import { MemoryQueue } from '../../adapters/queue/memory.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { MemoryStore } from '../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../adapters/vault/memory.ts';
import type { ContainerRuntime } from '../../core/ports.ts';
import type { ReleaseDeps } from '../../core/releases/engine.ts';
import type { TestCaddy } from './caddy.ts';

export const edgeReleaseDomain = 'apps.example.test';

export async function releaseDepsBehindCaddy(
  caddy: TestCaddy,
  options: { runtime?: ContainerRuntime; migrationTimeoutMs?: number } = {},
): Promise<{ deps: ReleaseDeps; dns: UpstreamDnsServer }> {
  const registry = new MemoryUpstreamRegistry();
  const zone = 'sdo.internal';
  const dns = await startUpstreamDns({ registry, zone, host: '127.0.0.1', port: 0, cacheMs: 50 });
  const deps: ReleaseDeps = {
    store: new MemoryStore(),
    runtime: options.runtime ?? new DockerRuntime(),
    edge: new CaddyEdgeRouter({
      adminUrl: caddy.adminUrl,
      server: caddy.serverName,
      dynamicUpstreams: { registry, zone, resolver: dns.address, refreshMs: 100, dnsCacheMs: 50 },
    }),
    queue: new MemoryQueue({ retryDelaySeconds: 0, pollIntervalMs: 5 }),
    vault: new MemoryKeyVault(),
    probe: new HttpHealthProbe(),
    clock: new SystemClock(),
    ids: new SequenceIds(),
    logger: new MemoryLogger(),
    config: {
      edgeDomain: edgeReleaseDomain,
      migrationTimeoutMs: options.migrationTimeoutMs ?? 20_000,
      maxStepAttempts: 3,
    },
  };
  return { deps, dns };
}
