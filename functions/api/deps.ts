import type { CoreDeps } from '../../core/deps.ts';
import type { EventQueue, HostedSignIn, Metrics } from '../../core/ports.ts';
import type { ReleaseDeps } from '../../core/releases/deps.ts';
import type { AskGate } from '../../core/domains/ask-gate.ts';
import type { DomainDeps } from '../../core/domains/deps.ts';

/** What the HTTP app needs from a composition root. */
export interface ApiDeps extends CoreDeps {
  queue: EventQueue;
  /** The deploy engine's ports, for the release endpoints. */
  release: ReleaseDeps;
  /** Custom domains (issue 6): the engine's ports and the on-demand TLS ask gate; 503 without. */
  domains?: { deps: DomainDeps; gate: AskGate };
  metrics: Metrics & { render?(): Promise<{ contentType: string; body: string }> };
  /** Extra readiness checks beyond the database and queue (name → check). */
  readiness?: Record<string, () => Promise<void>>;
  /** Cloud mode: the dashboard signs users in on this hosted page instead of its own form. */
  hostedSignIn?: HostedSignIn;
  api: {
    /** Largest request body accepted, in bytes. */
    maxBodyBytes: number;
    /** Version string shown in /health and the OpenAPI document. */
    version: string;
  };
}
