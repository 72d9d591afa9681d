import type { ContainerSpec } from '../ports.ts';
import type { Job, JobRun, Release, Service } from '../models.ts';
import { releaseImage } from '../releases/plan.ts';

/** Docker names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*; ids are opaque, so make them fit. */
const dockerSafe = (s: string): string =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '');

/** The container of one run: named after it, so a redelivered message finds its own. */
export function jobContainerName(run: Pick<JobRun, 'jobId' | 'id'>): string {
  return dockerSafe(`sdo-job-${run.jobId}-${run.id}`);
}

/**
 * The one-off container a run is: the release's image (its digest), the service's env and
 * secrets, its limits and network, the job's command in `sh -c`, never restarted.
 */
export function planJobRun({
  job,
  run,
  service,
  release,
  env,
  network,
}: {
  job: Job;
  run: Pick<JobRun, 'id' | 'jobId'>;
  service: Service;
  release: Pick<Release, 'image' | 'imageDigest' | 'id'>;
  /** Plain env with the opened secrets and linked data services merged over it. */
  env: Record<string, string>;
  network?: string;
}): ContainerSpec {
  return {
    ...(network ? { network } : {}),
    name: jobContainerName(run),
    image: releaseImage(release),
    env: service.containerPort === null ? env : { ...env, PORT: String(service.containerPort) },
    labels: {
      'selfdevop.org': job.orgId,
      'selfdevop.service': job.serviceId,
      'selfdevop.environment': job.environmentId,
      'selfdevop.release': release.id,
      'selfdevop.job': job.id,
      'selfdevop.job-run': run.id,
      'selfdevop.role': 'job',
    },
    cmd: ['sh', '-c', job.command],
    memoryMb: service.memoryMb,
    cpus: service.cpus,
    restartPolicy: 'no',
  };
}

/** The last `bytes` of `text`, cut at a line start when one is near, so the tail reads whole. */
export function tailOf(text: string, bytes: number): string {
  if (text.length <= bytes) return text;
  const cut = text.slice(text.length - bytes);
  const nl = cut.indexOf('\n');
  return nl >= 0 && nl < 200 ? cut.slice(nl + 1) : cut;
}
