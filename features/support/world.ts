/**
 * What scenarios share. The stack is booted once (hooks.ts) and every scenario talks to it;
 * `suite` holds what outlives a scenario (the installs, the owner's credentials, services
 * created), the World what one scenario remembers (the last response, named values).
 */
import { setWorldConstructor, World, type IWorldOptions } from '@cucumber/cucumber';
import type { TestAcme } from './acme.ts';
import type { HttpResponse, Install } from './stack.ts';

export interface Owner {
  email: string;
  password: string;
  token: string;
  orgId: string;
}

export const suite: {
  primary: Install | null;
  others: Install[];
  /** The primary install's ACME CA and DNS server; null where pebble is not installed. */
  acme: TestAcme | null;
  owner: Owner | null;
  nodeRegistered: boolean;
  services: Map<string, { id: string; host: string }>;
  orgIds: Set<string>;
  /** Data services' named volumes and project networks, removed at the end (containers go by their org label). */
  dataVolumes: Set<string>;
  dataNetworks: Set<string>;
  /** What steps started outside the stack (a git server, built images), undone at the end. */
  cleanups: (() => Promise<unknown>)[];
  runId: string;
} = {
  primary: null,
  others: [],
  acme: null,
  owner: null,
  nodeRegistered: false,
  services: new Map(),
  orgIds: new Set(),
  dataVolumes: new Set(),
  dataNetworks: new Set(),
  cleanups: [],
  runId: Math.random().toString(36).slice(2, 8),
};

export class AcceptanceWorld extends World {
  response: HttpResponse | null = null;
  token: string | null = null;
  values = new Map<string, string>();
  /** What a "Given I note …" step saw, for the matching "unchanged" step. */
  noted: Record<string, unknown> = {};
  lastReleaseId: string | null = null;

  constructor(options: IWorldOptions) {
    super(options);
  }

  get stack(): Install {
    if (!suite.primary) throw new Error('the stack was not installed (see the BeforeAll hook)');
    return suite.primary;
  }

  /** Replaces {name} with a remembered value; {run} is unique to this test run. */
  interpolate(text: string): string {
    return text.replace(/\{([A-Za-z][\w.]*)\}/g, (whole, name: string) => {
      if (name === 'run') return suite.runId;
      const value = this.values.get(name);
      if (value === undefined)
        throw new Error(`nothing remembered as "${name}" (in ${JSON.stringify(text)})`);
      return value;
    });
  }

  lastResponse(): HttpResponse {
    if (!this.response) throw new Error('no request was sent yet');
    return this.response;
  }
}

setWorldConstructor(AcceptanceWorld);

/** Reads a dotted path ("org.id", "items.0.name") from a JSON value. */
export function at(value: unknown, dotted: string): unknown {
  let current = value;
  for (const key of dotted.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}
