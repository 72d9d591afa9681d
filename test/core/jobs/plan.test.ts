import { describe, expect, it } from 'vitest';
import { jobContainerName, planJobRun, tailOf } from '../../../core/jobs/plan.ts';
import type { Job } from '../../../core/models.ts';
import { planCandidate, planWorkerGate, releasePlan } from '../../../core/releases/plan.ts';
import { aNode, aRelease, aService, anEnvironment } from '../releases/builders.ts';

const job: Job = {
  id: 'job_01abc',
  orgId: 'org_000001',
  serviceId: 'svc_000001',
  environmentId: 'env_000001',
  name: 'report',
  schedule: '30 2 * * *',
  timeZone: 'Europe/Berlin',
  command: 'node report.js --since yesterday',
  overlap: 'skip',
  timeoutSeconds: 300,
  retries: 2,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
};

const worker = aService({
  kind: 'worker',
  containerPort: null,
  workerHealth: { stableSeconds: 5, command: 'test -f /tmp/ready' },
});

describe('plans of workers and jobs', () => {
  it('a web release runs every step; a worker skips the edge', () => {
    expect(releasePlan(aService())).toEqual([
      'build',
      'start_candidate',
      'migrate',
      'health_check',
      'switch_traffic',
      'complete',
    ]);
    expect(releasePlan(worker)).toEqual([
      'build',
      'start_candidate',
      'migrate',
      'health_check',
      'complete',
    ]);
  });

  it("a worker's container publishes nothing and has no PORT", () => {
    const release = aRelease({ imageDigest: 'sha256:abc' });
    expect(
      planCandidate({
        service: worker,
        environment: anEnvironment(),
        release,
        node: aNode(),
        env: { QUEUE: 'emails' },
      }),
    ).toEqual({
      name: `sdo-svc_000001-env_000001-${release.id}`,
      image: 'sha256:abc',
      env: { QUEUE: 'emails' },
      labels: {
        'selfdevop.org': 'org_000001',
        'selfdevop.service': 'svc_000001',
        'selfdevop.environment': 'env_000001',
        'selfdevop.release': release.id,
        'selfdevop.role': 'worker',
      },
      memoryMb: 256,
      cpus: 0.5,
      restartPolicy: 'unless-stopped',
    });
  });

  it("a worker's gate: stable for its seconds, then its command", () => {
    expect(planWorkerGate(worker)).toEqual({
      stableMs: 5000,
      pollMs: 1000,
      deadlineMs: 30_000,
      command: ['sh', '-c', 'test -f /tmp/ready'],
      commandRunBy: 'exec',
    });
    expect(
      planWorkerGate(aService({ workerHealth: { stableSeconds: 60, command: null } })),
    ).toEqual({
      stableMs: 60_000,
      pollMs: 1000,
      deadlineMs: 120_000,
      command: null,
      commandRunBy: 'exec',
    });
  });

  it("a worker's gate on a Swarm: the command is the task's health check, not an exec", () => {
    expect(planWorkerGate(worker, true)).toEqual({
      stableMs: 5000,
      pollMs: 1000,
      deadlineMs: 30_000,
      command: ['sh', '-c', 'test -f /tmp/ready'],
      commandRunBy: 'swarm_health_check',
    });
  });

  it("a worker's container on a Swarm carries its command as the task's health check", () => {
    const release = aRelease({ imageDigest: 'sha256:abc' });
    const spec = planCandidate({
      service: worker,
      environment: anEnvironment(),
      release,
      node: aNode({ kind: 'swarm' }),
      env: { QUEUE: 'emails' },
    });
    expect(spec.healthCommand).toEqual({
      command: ['sh', '-c', 'test -f /tmp/ready'],
      // The service's 1 s probe interval; failures within stableSeconds do not count.
      intervalMs: 1000,
      timeoutMs: 5000,
      retries: 3,
      startPeriodMs: 5000,
    });
    expect(spec.replicaIndex).toBe(0);
  });

  it("a worker's health check runs at most once a second, and waits 5 to 30 s for the command", () => {
    const node = aNode({ kind: 'swarm' });
    const of = (health: Partial<ReturnType<typeof aService>['health']>) =>
      planCandidate({
        service: aService({
          ...worker,
          health: { ...worker.health, ...health },
        }),
        environment: anEnvironment(),
        release: aRelease(),
        node,
        env: {},
      }).healthCommand;
    expect([of({ intervalMs: 100 })?.intervalMs, of({ intervalMs: 4000 })?.intervalMs]).toEqual([
      1000, 4000,
    ]);
    expect([
      of({ timeoutMs: 500 })?.timeoutMs,
      of({ timeoutMs: 12_000 })?.timeoutMs,
      of({ timeoutMs: 60_000 })?.timeoutMs,
    ]).toEqual([5000, 12_000, 30_000]);
  });

  it('no health check in the spec without a command, for a web service, or on an engine', () => {
    const plan = (service: ReturnType<typeof aService>, kind: 'engine' | 'swarm') =>
      planCandidate({
        service,
        environment: anEnvironment(),
        release: aRelease(),
        node: aNode({ kind }),
        env: {},
      }).healthCommand;
    expect(
      plan(aService({ ...worker, workerHealth: { stableSeconds: 5, command: null } }), 'swarm'),
    ).toBeUndefined();
    // A web service keeps selfdevop's own HTTP probes (ARCHITECTURE.md: why no Swarm check).
    expect(plan(aService(), 'swarm')).toBeUndefined();
    // An engine: the gate execs the command.
    expect(plan(worker, 'engine')).toBeUndefined();
  });

  it("a job's run is a one-off of the serving release's image with the service's env", () => {
    const release = aRelease({ id: 'rel_9', imageDigest: 'sha256:def' });
    expect(
      planJobRun({
        job,
        run: { id: 'jrn_1', jobId: job.id },
        service: aService(),
        release,
        env: { DATABASE_URL: 'postgres://x' },
        network: 'sdo-net-prj_000001',
      }),
    ).toEqual({
      network: 'sdo-net-prj_000001',
      name: 'sdo-job-job_01abc-jrn_1',
      image: 'sha256:def',
      env: { DATABASE_URL: 'postgres://x', PORT: '8080' },
      labels: {
        'selfdevop.org': 'org_000001',
        'selfdevop.service': 'svc_000001',
        'selfdevop.environment': 'env_000001',
        'selfdevop.release': 'rel_9',
        'selfdevop.job': 'job_01abc',
        'selfdevop.job-run': 'jrn_1',
        'selfdevop.role': 'job',
      },
      cmd: ['sh', '-c', 'node report.js --since yesterday'],
      memoryMb: 256,
      cpus: 0.5,
      restartPolicy: 'no',
    });
    expect(jobContainerName({ jobId: 'job_A', id: 'jrn_B' })).toBe('sdo-job-job_a-jrn_b');
  });

  it('keeps the tail of long output, from a line start', () => {
    expect(tailOf('short', 100)).toBe('short');
    const lines = Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n');
    const tail = tailOf(lines, 40);
    expect(tail.length).toBeLessThanOrEqual(40);
    expect(tail.endsWith('line 99')).toBe(true);
    expect(tail.startsWith('line ')).toBe(true);
  });
});
