/**
 * Restart counts seen over time, per container, to tell a crash loop from one old restart:
 * the `crash_loop` rule (core/alerts/rules.ts) counts restarts of one replica within its
 * window (15 minutes), so a container that restarted twice last week and once now is not
 * looping, and one restarting every few seconds is, within a few collections.
 */
export class RestartHistory {
  readonly #windowMs: number;
  /** container id → its readings, oldest first: [time ms, restart count]. */
  readonly #seen = new Map<string, [number, number][]>();

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  /**
   * Notes a reading and answers how many restarts happened within the window, as far as
   * this history saw them (a container first seen now has risen by 0).
   */
  observe(containerId: string, restarts: number, atMs: number): number {
    let readings = this.#seen.get(containerId);
    if (!readings) {
      readings = [];
      this.#seen.set(containerId, readings);
    }
    const last = readings[readings.length - 1];
    // A count that went down is another run of the container: start again.
    if (last && restarts < last[1]) readings.length = 0;
    readings.push([atMs, restarts]);
    // Keep the newest reading from before the window as the baseline, drop older ones.
    const from = atMs - this.#windowMs;
    while (readings.length > 1 && readings[1]![0] <= from) readings.shift();
    return restarts - readings[0]![1];
  }

  /** Forgets containers not seen in the last collection (removed, replaced). */
  keepOnly(containerIds: ReadonlySet<string>): void {
    for (const id of this.#seen.keys()) if (!containerIds.has(id)) this.#seen.delete(id);
  }
}
