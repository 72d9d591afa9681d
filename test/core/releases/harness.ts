import { ManualClock } from '../../../adapters/clock/manual.ts';
import { MemoryEdgeRouter } from '../../../adapters/edge/memory.ts';
import { SequenceIds } from '../../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../../adapters/logger/memory.ts';
import { MemoryHealthProbe } from '../../../adapters/probe/memory.ts';
import { MemoryQueue } from '../../../adapters/queue/memory.ts';
import { MemoryRuntime } from '../../../adapters/runtime/memory.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../../adapters/vault/memory.ts';
import type { NodeRecord, Release, ReleaseStatus, Service } from '../../../core/models.ts';
import type { EventQueue, OrgRepos, SendOptions, Store } from '../../../core/ports.ts';
import {
  advanceRelease,
  createRelease,
  releaseRetireQueue,
  releaseStepsQueue,
  retireRelease,
  type ReleaseDeps,
  type ReleaseRetireMessage,
  type ReleaseStepMessage,
} from '../../../core/releases/engine.ts';
import type { Principal } from '../../../core/deps.ts';
import { aNode, aProject, aService, anEnvironment, anOrg, aSecret } from './builders.ts';

export interface Sent {
  queue: string;
  payload: unknown;
  options: SendOptions;
  /** On the manual clock, when the message may be delivered. */
  dueAt: number;
  handled: boolean;
}

/** The MemoryQueue, with every accepted send recorded so tests can deliver messages by hand. */
export class RecordingQueue implements EventQueue {
  readonly sent: Sent[] = [];
  readonly inner: MemoryQueue;
  private readonly clock: ManualClock;
  constructor(clock: ManualClock) {
    this.clock = clock;
    this.inner = new MemoryQueue({ clock, retryDelaySeconds: 0, pollIntervalMs: 1 });
  }
  async send<T>(queue: string, payload: T, options: SendOptions = {}): Promise<string | null> {
    const id = await this.inner.send(queue, payload, options);
    if (id !== null) {
      const dueAt = this.clock.now().getTime() + (options.delaySeconds ?? 0) * 1000;
      this.sent.push({ queue, payload: structuredClone(payload), options, dueAt, handled: false });
    }
    return id;
  }
  consume: EventQueue['consume'] = (queue, handler, options) =>
    this.inner.consume(queue, handler, options);
  async ping(): Promise<void> {}
  of(queue: string): Sent[] {
    return this.sent.filter((s) => s.queue === queue);
  }
}

/** A Store whose `releases.transition` out of `from` throws once: a worker killed just before the CAS. */
export class KillableStore implements Store {
  readonly inner: Store;
  killBefore: ReleaseStatus | null = null;
  /** Runs when the kill happens, e.g. to change the world before the redelivery. */
  onKill: (() => void) | null = null;
  constructor(inner: Store) {
    this.inner = inner;
  }
  get identity() {
    return this.inner.identity;
  }
  get domainLookup() {
    return this.inner.domainLookup;
  }
  get authGuards() {
    return this.inner.authGuards;
  }
  get releaseLookup() {
    return this.inner.releaseLookup;
  }
  get nodeLookup() {
    return this.inner.nodeLookup;
  }
  get inviteLookup() {
    return this.inner.inviteLookup;
  }
  get pushHookLookup() {
    return this.inner.pushHookLookup;
  }
  get gitPollLookup() {
    return this.inner.gitPollLookup;
  }
  withOrg<T>(orgId: string, fn: (repos: OrgRepos) => Promise<T>): Promise<T> {
    return this.inner.withOrg(orgId, (repos) => {
      const wrapped = Object.create(repos) as OrgRepos & { releases: OrgRepos['releases'] };
      wrapped.releases = {
        ...repos.releases,
        transition: async (id, from, patch) => {
          if (this.killBefore === from) {
            this.killBefore = null;
            this.onKill?.();
            throw new Error(`worker killed before leaving ${from}`);
          }
          return repos.releases.transition(id, from, patch);
        },
      };
      return fn(wrapped);
    });
  }
  ping = () => this.inner.ping();
  close = () => this.inner.close();
}

export const orgId = 'org_000001';
export const dockerHost = 'unix:///var/run/docker.sock';
export const edgeDomain = 'apps.example.test';

export const deployer: Principal = {
  actorType: 'user',
  actorId: 'usr_1',
  userId: 'usr_1',
  orgId,
  role: 'deployer',
};

/** Images the engine tests deploy; `sh -c <cmd>` is how the engine runs a migrate command. */
function addImages(runtime: MemoryRuntime): void {
  const migrations = {
    'sh -c ./migrate': { exitCode: 0, lines: ['applying 001_init', 'migrations done'] },
    'sh -c ./migrate-fail': {
      exitCode: 3,
      lines: ['applying 002_users', 'error: relation "users" already exists'],
    },
    'sh -c ./migrate-hang': { hang: true, lines: ['waiting for a lock'] },
    'sh -c ./migrate-leak': {
      exitCode: 0,
      lines: ['connecting to postgres://app:hunter2-secret@db/app'],
    },
  };
  runtime.addImage('shop/web:1', { oneOffs: migrations });
  runtime.addImage('shop/web:2', { oneOffs: migrations });
  runtime.addImage('shop/web:3', { oneOffs: migrations });
  // Images whose own ./migrate fails or hangs, for a service whose migrate command is ./migrate.
  runtime.addImage('shop/web:bad-migration', {
    oneOffs: { 'sh -c ./migrate': migrations['sh -c ./migrate-fail'] },
  });
  runtime.addImage('shop/web:slow-migration', {
    oneOffs: { 'sh -c ./migrate': migrations['sh -c ./migrate-hang'] },
  });
  runtime.addImage('shop/web:unhealthy', { healthy: false, oneOffs: migrations });
  runtime.addImage('shop/web:crash', { exitOnStart: 1, oneOffs: migrations });
}

export interface Harness {
  deps: ReleaseDeps;
  clock: ManualClock;
  store: KillableStore;
  runtime: MemoryRuntime;
  edge: MemoryEdgeRouter;
  queue: RecordingQueue;
  vault: MemoryKeyVault;
  probe: MemoryHealthProbe;
  logger: MemoryLogger;
  service: Service;
  /** Delivers pending step messages (retrying thrown ones as the queue would) until none is left. */
  drain(): Promise<void>;
  /** Delivers the retire messages due by now. */
  retireDue(): Promise<void>;
  deploy(image: string): Promise<Release>;
  release(id: string): Promise<Release>;
  repos<T>(fn: (r: OrgRepos) => Promise<T>): Promise<T>;
}

/** An org with one project, the production environment, one service and one node, and all ports in memory. */
export async function setup(
  service: Partial<Service> = {},
  config: Partial<ReleaseDeps['config']> = {},
  ports: { store?: Store; node?: Partial<NodeRecord> } = {},
): Promise<Harness> {
  const clock = new ManualClock('2026-01-01T00:00:00.000Z');
  const store = new KillableStore(ports.store ?? new MemoryStore());
  const runtime = new MemoryRuntime({ clock });
  addImages(runtime);
  const edge = new MemoryEdgeRouter();
  const queue = new RecordingQueue(clock);
  const vault = new MemoryKeyVault();
  // The probe asks the fake Docker what the container at that address would answer.
  const probe = new MemoryHealthProbe().setDefault((url) => {
    const u = new URL(url);
    const reply = runtime.httpGet(u.host, u.pathname);
    return reply ? MemoryHealthProbe.status(reply.status) : MemoryHealthProbe.refused;
  });
  const logger = new MemoryLogger();
  const deps: ReleaseDeps = {
    store,
    runtime,
    edge,
    queue,
    vault,
    probe,
    clock,
    ids: new SequenceIds(),
    logger,
    config: { edgeDomain, migrationTimeoutMs: 60_000, maxStepAttempts: 3, ...config },
  };
  const svc = aService({ id: 'svc_0abc12', image: 'shop/web:1', ...service });
  await store.inner.withOrg(orgId, async (r) => {
    await r.orgs.insert(anOrg());
    await r.projects.insert(aProject());
    await r.environments.insert(anEnvironment());
    await r.services.insert(svc);
    await r.nodes.insert(aNode({ dockerHost, ...ports.node }));
  });

  const h: Harness = {
    deps,
    clock,
    store,
    runtime,
    edge,
    queue,
    vault,
    probe,
    logger,
    service: svc,
    async drain() {
      for (let guard = 0; guard < 200; guard++) {
        const next = queue.of(releaseStepsQueue).find((s) => !s.handled);
        if (!next) return;
        next.handled = true;
        const max = next.options.maxAttempts ?? 5;
        for (let attempt = 1; attempt <= max; attempt++) {
          try {
            await advanceRelease(deps, next.payload as ReleaseStepMessage, attempt);
            break;
          } catch (e) {
            if (attempt === max) throw e;
          }
        }
      }
      throw new Error('drain: more than 200 step messages');
    },
    async retireDue() {
      const now = clock.now().getTime();
      for (const s of queue.of(releaseRetireQueue)) {
        if (s.handled || s.dueAt > now) continue;
        s.handled = true;
        await retireRelease(deps, s.payload as ReleaseRetireMessage);
      }
    },
    async deploy(image) {
      const r = await createRelease(deps, deployer, { serviceId: svc.id, image });
      await h.drain();
      return h.release(r.id);
    },
    release: (id) => h.repos(async (r) => (await r.releases.get(id))!),
    repos: (fn) => store.inner.withOrg(orgId, fn),
  };
  return h;
}

/** Seals a secret for the service environment as the secrets API would. */
export async function putSecret(h: Harness, name: string, value: string): Promise<void> {
  const sealed = await h.vault.seal(value, `${orgId}:${h.service.id}:env_000001:${name}`);
  await h.repos((r) =>
    r.secrets.put(
      aSecret({ id: `sec_${name.toLowerCase()}`, serviceId: h.service.id, name, sealed }),
    ),
  );
}
