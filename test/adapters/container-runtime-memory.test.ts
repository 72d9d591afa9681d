import { describe } from 'vitest';
import { MemoryRuntime } from '../../adapters/runtime/memory.ts';
import { runContainerRuntimeContract } from '../contracts/container-runtime.case.ts';
import { testImages, unreachableTargets } from '../support/docker.ts';

describe('MemoryRuntime contract', () => {
  runContainerRuntimeContract({
    images: testImages,
    make: async () => {
      const runtime = MemoryRuntime.withTestImages();
      for (const t of unreachableTargets) runtime.setReachable(t.dockerHost, false);
      let n = 0;
      return {
        runtime,
        target: { dockerHost: 'unix:///var/run/docker.sock' },
        unreachable: unreachableTargets,
        httpGet: async (published, path) => runtime.httpGet(published, path),
        labels: { 'selfdevop.test': 'memory' },
        name: (what) => `memory-${what}-${++n}`,
        cleanup: async () => undefined,
      };
    },
  });
});
