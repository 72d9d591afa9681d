import { describe, expect, it } from 'vitest';
import { ConfigError, fromEnv, requireSettings } from '../../adapters/modes/config.ts';

describe('configuration from the environment', () => {
  it('runs on its embedded defaults with nothing set', () => {
    const c = fromEnv({});
    expect(c).toMatchObject({
      MODE: 'selfhost',
      PORT: 3000,
      HOST: '127.0.0.1',
      SIGNUP_MODE: 'first-user',
      EDGE_UPSTREAMS: 'dynamic',
      DOMAIN_CHANGES_PER_HOUR: 30,
    });
    expect(c.DATABASE_URL).toBeUndefined();
  });

  it('treats an empty variable as unset', () => {
    expect(fromEnv({ PORT: '', DATABASE_URL: '' }).PORT).toBe(3000);
  });

  it('stops with a message naming every bad variable', () => {
    const bad = {
      PORT: '99999',
      DATABASE_URL: 'mysql://db/x',
      SIGNUP_MODE: 'sometimes',
      JWT_SECRET: 'short',
      RUN_WORKERS: 'maybe',
      EDGE_DOMAIN: 'Not A Domain',
      EDGE_IPV4: '10.0.0',
      DOMAIN_CHANGES_PER_HOUR: '0',
      SELFDEVOP_DOMAIN: 'https://console.example.com',
      CONTROL_UPSTREAM: 'api',
      SELFDEVOP_ROLE: 'scheduler',
      EDGE_TLS_ADDRESS: 'caddy',
      QUEUE_DATABASE_URL: 'redis://db/x',
      MIGRATE_DATABASE_URL: 'not a url',
      API_DATABASE_PASSWORD: 'short',
      QUEUE_DATABASE_PASSWORD: 'short',
    };
    let error: unknown;
    try {
      fromEnv(bad);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    for (const name of Object.keys(bad)) expect((error as Error).message).toContain(`${name}:`);
  });

  it('reads the build limits, and refuses a timeout the queue message would outlive', () => {
    expect(fromEnv({})).toMatchObject({
      BUILD_TIMEOUT_SECONDS: 900,
      BUILD_MEMORY_MB: 2048,
      BUILD_CPUS: 2,
      BUILD_MAX_SOURCE_MB: 500,
      BUILD_NODE_IMAGE: 'selfdevop/node-build:24',
      BUILD_KEEP_IMAGES: 5,
      BUILD_CACHE_MAX_MB: 10_240,
      BUILD_CONCURRENCY_PER_NODE: 2,
      BUILD_BUILDER: 'buildkit',
      GIT_BIN: 'git',
      GIT_ALLOW_PRIVATE_HOSTS: true,
    });
    expect(
      fromEnv({
        BUILD_TIMEOUT_SECONDS: '120',
        BUILD_BUILDER: 'legacy',
        GIT_ALLOW_PRIVATE_HOSTS: 'false',
      }),
    ).toMatchObject({
      BUILD_TIMEOUT_SECONDS: 120,
      BUILD_BUILDER: 'legacy',
      GIT_ALLOW_PRIVATE_HOSTS: false,
    });
    for (const [name, value, message] of [
      ['BUILD_TIMEOUT_SECONDS', '7200', /BUILD_TIMEOUT_SECONDS: must be at most 3000/],
      ['BUILD_BUILDER', 'kaniko', /BUILD_BUILDER: /],
      ['BUILD_MEMORY_MB', '1', /BUILD_MEMORY_MB: /],
    ] as const)
      expect(() => fromEnv({ [name]: value })).toThrow(message);
  });

  it('reads OPERATOR_EMAILS lowercased, and refuses it with open signup', () => {
    expect(
      fromEnv({ OPERATOR_EMAILS: ' Ops@Example.com, b@example.com ' }).OPERATOR_EMAILS,
    ).toEqual(['ops@example.com', 'b@example.com']);
    expect(() => fromEnv({ OPERATOR_EMAILS: 'not-an-email' })).toThrow(/OPERATOR_EMAILS:/);
    expect(() => fromEnv({ OPERATOR_EMAILS: 'ops@example.com', SIGNUP_MODE: 'open' })).toThrow(
      /OPERATOR_EMAILS: must not be set while SIGNUP_MODE=open/,
    );
  });

  it('reads DATA_IMAGES as engine:version=image entries, and names a bad one', () => {
    expect(
      fromEnv({ DATA_IMAGES: 'postgres:15.8=registry.local/pg:15.8, mariadb:10.11.9=m:10.11.9' })
        .DATA_IMAGES,
    ).toEqual([
      { engine: 'postgres', version: '15.8', image: 'registry.local/pg:15.8' },
      { engine: 'mariadb', version: '10.11.9', image: 'm:10.11.9' },
    ]);
    expect(() => fromEnv({ DATA_IMAGES: 'mongo:7=mongo:7' })).toThrow(
      /DATA_IMAGES: must be engine:version=image entries/,
    );
  });

  it('reads the worker and healthcheck settings with their compose defaults', () => {
    expect(fromEnv({})).toMatchObject({
      CONTROL_UPSTREAM: 'api:3000',
      WORKER_HEARTBEAT_FILE: '/run/selfdevop/worker.heartbeat',
      SELFDEVOP_ROLE: 'api',
    });
    expect(
      fromEnv({ SELFDEVOP_DOMAIN: 'console.example.com', SELFDEVOP_ROLE: 'worker' }),
    ).toMatchObject({
      SELFDEVOP_DOMAIN: 'console.example.com',
      SELFDEVOP_ROLE: 'worker',
    });
  });

  it('names every setting a process needs and was not given', () => {
    const config = fromEnv({ DATABASE_URL: 'postgres://db/x' });
    expect(() =>
      requireSettings(config, 'the worker', ['DATABASE_URL', 'JWT_SECRET', 'ENCRYPTION_KEY_FILE']),
    ).toThrow(
      /^invalid configuration:\n {2}JWT_SECRET: required by the worker .*\n {2}ENCRYPTION_KEY_FILE: required by the worker/,
    );
    expect(requireSettings(config, 'the migrate job', ['DATABASE_URL']).DATABASE_URL).toBe(
      'postgres://db/x',
    );
  });
});
