import { describe, expect, it } from 'vitest';
import {
  containerName,
  defaultHosts,
  planCandidate,
  planMigration,
  planRoute,
  routeId,
} from '../../../core/releases/plan.ts';
import { aNode, aRelease, aService, anEnvironment } from './builders.ts';

describe('planCandidate', () => {
  it('plans the serving container of a release', () => {
    expect(
      planCandidate({
        service: aService(),
        environment: anEnvironment(),
        release: aRelease({ imageDigest: 'sha256:abc' }),
        node: aNode({ address: '10.0.0.5' }),
        env: { NODE_ENV: 'production', DATABASE_URL: 'postgres://db' },
      }),
    ).toEqual({
      name: 'sdo-svc_000001-env_000001-rel_000001',
      image: 'sha256:abc',
      env: { NODE_ENV: 'production', DATABASE_URL: 'postgres://db', PORT: '8080' },
      labels: {
        'selfdevop.org': 'org_000001',
        'selfdevop.service': 'svc_000001',
        'selfdevop.environment': 'env_000001',
        'selfdevop.release': 'rel_000001',
        'selfdevop.role': 'web',
      },
      containerPort: 8080,
      publishIp: '10.0.0.5',
      memoryMb: 256,
      cpus: 0.5,
      restartPolicy: 'unless-stopped',
    });
  });

  it('uses the tag until the digest is known, and PORT always wins', () => {
    const spec = planCandidate({
      service: aService({ containerPort: 3000, memoryMb: null, cpus: null }),
      environment: anEnvironment(),
      release: aRelease(),
      node: aNode(),
      env: { PORT: '1' },
    });
    expect(spec.image).toBe('shop/web:1');
    expect(spec.env).toEqual({ PORT: '3000' });
    expect([spec.memoryMb, spec.cpus]).toEqual([null, null]);
  });

  it("carries the service's placement labels to a Swarm, where they become constraints", () => {
    const service = aService({ placement: { labels: { zone: 'a' } } });
    const on = (kind: 'engine' | 'swarm') =>
      planCandidate({
        service,
        environment: anEnvironment(),
        release: aRelease(),
        node: aNode({ kind }),
        env: {},
      }).placementLabels;
    expect(on('swarm')).toEqual({ zone: 'a' });
    // A standalone engine was chosen by them already.
    expect(on('engine')).toBeUndefined();
  });

  it('tells a Swarm which replica of its release a container is, so the runtime spreads them', () => {
    const on = (kind: 'engine' | 'swarm', index?: number) =>
      planCandidate({
        service: aService(),
        environment: anEnvironment(),
        release: aRelease(),
        node: aNode({ kind }),
        env: {},
        ...(index === undefined ? {} : { index }),
      });
    expect(on('swarm', 2).replicaIndex).toBe(2);
    expect(on('swarm').replicaIndex).toBe(0);
    // No placement labels on the service: no constraint, only the index.
    expect(on('swarm', 1).placementLabels).toBeUndefined();
    // An engine was chosen by selfdevop's placement already.
    expect(on('engine', 2).replicaIndex).toBeUndefined();
  });

  it('makes ids docker-safe and lowercase', () => {
    expect(containerName({ serviceId: 'Svc_AB', environmentId: 'env:1', id: 'Rel/X' })).toBe(
      'sdo-svc_ab-env-1-rel-x',
    );
    expect(routeId('Svc_AB', 'env 1')).toBe('sdo-svc_ab-env-1');
  });
});

describe('planMigration', () => {
  it('plans a one-off container of the new image with the new env and no port', () => {
    expect(
      planMigration({
        service: aService({ migrateCommand: 'npm run migrate' }),
        environment: anEnvironment(),
        release: aRelease({ imageDigest: 'sha256:abc' }),
        env: { SECRET: 's' },
      }),
    ).toEqual({
      name: 'sdo-svc_000001-env_000001-rel_000001-migrate',
      image: 'sha256:abc',
      env: { SECRET: 's', PORT: '8080' },
      labels: {
        'selfdevop.org': 'org_000001',
        'selfdevop.service': 'svc_000001',
        'selfdevop.environment': 'env_000001',
        'selfdevop.release': 'rel_000001',
        'selfdevop.role': 'migrate',
      },
      cmd: ['sh', '-c', 'npm run migrate'],
      memoryMb: 256,
      cpus: 0.5,
      restartPolicy: 'no',
    });
  });

  it('refuses a service without a migrate command', () => {
    expect(() =>
      planMigration({
        service: aService(),
        environment: anEnvironment(),
        release: aRelease(),
        env: {},
      }),
    ).toThrow('service svc_000001 has no migrate command');
  });
});

describe('planRoute', () => {
  it('plans the route of a service environment', () => {
    expect(
      planRoute({
        service: aService({ sticky: true, drainSeconds: 600 }),
        environment: anEnvironment(),
        upstreams: ['10.0.0.5:49153'],
        hosts: ['web-production-000001.apps.example.test'],
      }),
    ).toEqual({
      id: 'sdo-svc_000001-env_000001',
      hosts: ['web-production-000001.apps.example.test'],
      upstreams: ['10.0.0.5:49153'],
      sticky: true,
      drainSeconds: 600,
    });
  });
});

describe('defaultHosts', () => {
  it('names the host after service, environment and the end of the service id', () => {
    expect(
      defaultHosts({
        service: aService({ id: 'svc_01jdabcxyz9k2m' }),
        environment: anEnvironment(),
        edgeDomain: 'apps.example.test',
      }),
    ).toEqual(['web-production-yz9k2m.apps.example.test']);
  });

  it('is DNS-safe and lowercase whatever the names are', () => {
    expect(
      defaultHosts({
        service: { id: 'svc_AB_CD1', name: 'My Shop__API' },
        environment: { name: 'Staging/EU' },
        edgeDomain: 'Apps.Example.TEST.',
      }),
    ).toEqual(['my-shop-api-staging-eu-ab-cd1.apps.example.test']);
  });

  it('keeps the label within 63 characters', () => {
    const [host] = defaultHosts({
      service: { id: 'svc_000001', name: 'x'.repeat(80) },
      environment: { name: 'production' },
      edgeDomain: 'apps.example.test',
    });
    const label = host!.split('.')[0]!;
    expect(label).toBe(`${'x'.repeat(56)}-000001`);
    expect(label.length).toBe(63);
  });
});
