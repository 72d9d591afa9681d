/**
 * How long an image needs by itself to become healthy, measured apart from the engine:
 * DockerRuntime.start() (create + start, port published) and then the engine's own HTTP
 * probe every `probeEveryMs` until the first 2xx. The engine's step rows cannot show this:
 * its first probe comes after queue hops, by when the app has long been ready.
 */
import { HttpHealthProbe } from '../../adapters/probe/http.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { DockerTarget } from '../../core/ports.ts';

export interface FirstHealthySample {
  /** runtime.start() call: create, start, read back the published port. */
  dockerStartMs: number;
  /** From start() resolving to the first 2xx of GET healthPath. */
  firstHealthyMs: number;
  probes: number;
}

export async function measureFirstHealthy(options: {
  target: DockerTarget;
  image: string;
  containerPort: number;
  healthPath: string;
  labels: Record<string, string>;
  name: (n: number) => string;
  samples: number;
  probeEveryMs?: number;
  deadlineMs?: number;
}): Promise<FirstHealthySample[]> {
  const runtime = new DockerRuntime();
  const probe = new HttpHealthProbe();
  const every = options.probeEveryMs ?? 10;
  const deadlineMs = options.deadlineMs ?? 15_000;
  const out: FirstHealthySample[] = [];
  for (let n = 0; n < options.samples; n++) {
    const name = options.name(n);
    const t0 = performance.now();
    const info = await runtime.start(options.target, {
      name,
      image: options.image,
      env: { PORT: String(options.containerPort) },
      labels: options.labels,
      containerPort: options.containerPort,
      publishIp: '127.0.0.1',
      restartPolicy: 'no',
    });
    const started = performance.now();
    try {
      if (!info.published) throw new Error(`${options.image}: container ${name} publishes no port`);
      let probes = 0;
      for (;;) {
        probes++;
        const r = await probe.check(`http://${info.published}${options.healthPath}`, 500);
        if (r.ok) break;
        if (performance.now() - started > deadlineMs) {
          throw new Error(
            `${options.image} was not healthy within ${deadlineMs} ms (last: ${r.status ?? r.error})`,
          );
        }
        await new Promise((x) => setTimeout(x, every));
      }
      out.push({
        dockerStartMs: started - t0,
        firstHealthyMs: performance.now() - started,
        probes,
      });
    } finally {
      await runtime.remove(options.target, name);
    }
  }
  return out;
}
