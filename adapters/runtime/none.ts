import { Unavailable } from '../../core/errors.ts';
import type { ContainerInfo, ContainerRuntime, OneOffResult } from '../../core/ports.ts';

/**
 * The ContainerRuntime of a process that reaches no Docker engine: the cloud API and
 * schedule functions. Every call is Unavailable, which the release engine answers the way
 * it answers an engine that is down: a manual rollback is handed to the deploy worker
 * (`release-rollbacks`), the one function with the Docker client and the tenants' node
 * credentials in use. It also keeps dockerode out of those functions' bundles.
 */
export class NoEngineRuntime implements ContainerRuntime {
  private refuse(): never {
    throw new Unavailable(
      'docker',
      'this process does not reach Docker engines; the deploy worker does',
    );
  }
  async ping(): Promise<void> {
    this.refuse();
  }
  async resolveImage(): Promise<string> {
    this.refuse();
  }
  async start(): Promise<ContainerInfo> {
    this.refuse();
  }
  async runOnce(): Promise<OneOffResult> {
    this.refuse();
  }
  async inspect(): Promise<ContainerInfo | null> {
    this.refuse();
  }
  async list(): Promise<ContainerInfo[]> {
    this.refuse();
  }
  async stop(): Promise<void> {
    this.refuse();
  }
  async remove(): Promise<void> {
    this.refuse();
  }
}
