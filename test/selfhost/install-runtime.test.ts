import { describe, expect, it } from 'vitest';
import {
  currentInstallRuntime,
  installRuntime,
  relaunchWithInstallRuntime,
} from '../../bench/support/install-runtime.ts';

describe('the install runtime the benchmarks run the control plane with', () => {
  it("is the image's malloc arenas, with the API's young generation from the stack and the worker's from the image", () => {
    expect(installRuntime('api')).toEqual({
      nodeFlags: ['--max-semi-space-size=8'],
      env: { MALLOC_ARENA_MAX: '2' },
    });
    expect(installRuntime('worker')).toEqual({
      nodeFlags: [
        '--max-semi-space-size=2',
        '--incremental-marking-soft-trigger=70',
        '--incremental-marking-hard-trigger=90',
      ],
      env: { MALLOC_ARENA_MAX: '2' },
    });
  });

  const dockerfile =
    'FROM x\nENV NODE_OPTIONS="--a=1 --b" MALLOC_ARENA_MAX=2 OTHER=y\nENV PORT=3000\n';
  const compose = [
    'x-env: &env',
    '  MALLOC_ARENA_MAX: "4"',
    'services:',
    '  api:',
    '    environment:',
    '      <<: *env',
    '      NODE_OPTIONS: --c',
    '      PORT: "1"',
    '  worker:',
    '    image: x',
  ].join('\n');

  it("takes a service's overrides, merged keys included, only for the image line's variables", () => {
    expect(installRuntime('api', { dockerfile, compose })).toEqual({
      nodeFlags: ['--c'],
      env: { MALLOC_ARENA_MAX: '4', OTHER: 'y' },
    });
    expect(installRuntime('worker', { dockerfile, compose })).toEqual({
      nodeFlags: ['--a=1', '--b'],
      env: { MALLOC_ARENA_MAX: '2', OTHER: 'y' },
    });
  });

  it("appends the flags on the service's command, before its script, to NODE_OPTIONS's", () => {
    const withCommand = [
      'services:',
      '  worker:',
      "    command: ['node', '--x=1', '--y', 'worker.mjs', '--not-a-node-flag']",
      '  api:',
      "    command: ['sh', '-c', '--z']",
    ].join('\n');
    expect(installRuntime('worker', { dockerfile, compose: withCommand }).nodeFlags).toEqual([
      '--a=1',
      '--b',
      '--x=1',
      '--y',
    ]);
    // Not Node's command line: nothing on it is a Node flag.
    expect(installRuntime('api', { dockerfile, compose: withCommand }).nodeFlags).toEqual([
      '--a=1',
      '--b',
    ]);
  });

  it('names the file when the image sets no NODE_OPTIONS or the stack lacks the service', () => {
    expect(() => installRuntime('api', { dockerfile: 'FROM x\n', compose })).toThrow(
      /no 'ENV NODE_OPTIONS=' line in .*selfhost\/Dockerfile/,
    );
    expect(() => installRuntime('api', { dockerfile, compose: 'services: {}\n' })).toThrow(
      /no 'api' service in .*selfhost\/docker-compose\.yml/,
    );
  });

  it('relaunches nothing in a process that already runs with the role, and says which it is', async () => {
    const before = process.env.SELFDEVOP_INSTALL_RUNTIME;
    try {
      delete process.env.SELFDEVOP_INSTALL_RUNTIME;
      expect(currentInstallRuntime()).toBeNull();
      process.env.SELFDEVOP_INSTALL_RUNTIME = 'worker';
      await expect(relaunchWithInstallRuntime('worker')).resolves.toBe(false);
      expect(currentInstallRuntime()).toEqual({ role: 'worker', ...installRuntime('worker') });
    } finally {
      if (before === undefined) delete process.env.SELFDEVOP_INSTALL_RUNTIME;
      else process.env.SELFDEVOP_INSTALL_RUNTIME = before;
    }
  });
});
