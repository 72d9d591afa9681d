import { describe } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { runContainerRuntimeContract } from '../contracts/container-runtime.case.ts';
import {
  dockerTarget,
  ensureTestImages,
  httpGet,
  removeContainersByLabel,
  testImages,
  testRun,
  unreachableTargets,
} from '../support/docker.ts';
import { available } from '../support/services.ts';

describe.skipIf(!(await available('docker')))('DockerRuntime contract', () => {
  runContainerRuntimeContract({
    images: testImages,
    make: async () => {
      await ensureTestImages();
      const run = testRun(import.meta.url);
      return {
        runtime: new DockerRuntime({ drainOutputMs: 2000 }),
        target: dockerTarget,
        unreachable: unreachableTargets,
        httpGet: (published, path) => httpGet(published, path),
        labels: run.labels,
        name: run.name,
        cleanup: async () => {
          await removeContainersByLabel(run.labels);
        },
      };
    },
  });
});
