import { describe, expect, it } from 'vitest';
import { ConfigError, fromEnv } from '../../adapters/modes/config.ts';

describe('configuration from the environment', () => {
  it('runs on its embedded defaults with nothing set', () => {
    const c = fromEnv({});
    expect(c).toMatchObject({ MODE: 'selfhost', PORT: 3000, HOST: '127.0.0.1', SIGNUP_MODE: 'first-user', EDGE_UPSTREAMS: 'dynamic' });
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
});
