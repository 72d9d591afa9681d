/**
 * The API replies the dashboard reads: the core's records as the API serializes them, plus
 * the fields the API adds to a view (a project's environments, a service's hosts, a
 * release's steps, a domain's records).
 */
import type {
  Domain as DomainRecord,
  Environment,
  Project as ProjectRecord,
  Release as ReleaseRecord,
  ReleaseLogLine,
  ReleaseStep,
  Service as ServiceRecord,
} from '../../../core/models.ts';
import { releaseStatuses } from '../../../core/models.ts';
import { isTerminal } from '../../../core/releases/state-machine.ts';
import type { NodeView } from '../../../core/nodes/use-cases.ts';

export type { Environment };
/** A node as the API shows it: whether TLS or SSH credentials are set, never the material. */
export type NodeRecord = NodeView;
export type Step = ReleaseStep;
export type LogLine = ReleaseLogLine;
export type Project = ProjectRecord & { environments?: Environment[] };
/** A service as the API shows it: never its sealed git credential. */
export type Service = Omit<ServiceRecord, 'sealedGitCredential'> & {
  hosts?: { environment: string; host: string }[];
};
export type Release = ReleaseRecord & { steps?: Step[] };
export type Domain = Omit<DomainRecord, 'verificationToken'> & {
  records: { type: string; name: string; value: string }[];
  certDaysLeft: number | null;
};

/** Statuses a release does not leave. */
export const terminal: string[] = releaseStatuses.filter(isTerminal);
