import { describe, expect, it } from 'vitest';
import { installRuntime } from '../../bench/support/install-runtime.ts';

describe('the install runtime the benchmarks run the control plane with', () => {
  it("is the install image's NODE_OPTIONS and malloc arenas", () => {
    const runtime = installRuntime();
    expect(runtime.nodeFlags).toContain('--max-semi-space-size=4');
    expect(runtime.env).toEqual({ MALLOC_ARENA_MAX: '2' });
  });

  it('reads quoted options as several flags, and the other variables of the line', () => {
    const text = 'FROM x\nENV NODE_OPTIONS="--a=1 --b" MALLOC_ARENA_MAX=2 OTHER=y\nENV PORT=3000\n';
    expect(installRuntime(text)).toEqual({
      nodeFlags: ['--a=1', '--b'],
      env: { MALLOC_ARENA_MAX: '2', OTHER: 'y' },
    });
  });

  it('names the file when the image sets no NODE_OPTIONS', () => {
    expect(() => installRuntime('FROM x\nENV PORT=3000\n')).toThrow(
      /no 'ENV NODE_OPTIONS=' line in .*selfhost\/Dockerfile/,
    );
  });
});
