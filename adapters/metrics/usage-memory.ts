import type { UsageSink, UsageSnapshot } from '../../core/ports.ts';

/** Keeps every snapshot published, for tests. */
export class MemoryUsageSink implements UsageSink {
  readonly snapshots: UsageSnapshot[] = [];

  publish(snapshot: UsageSnapshot): void {
    this.snapshots.push(snapshot);
  }
}
