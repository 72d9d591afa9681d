/**
 * A share of a worker's step slots per org: one org's long steps (migrations, image pulls,
 * health slices) can take at most `perOrg` of them, so other orgs' releases always find a
 * free one. Counted per worker process; each process keeps its own share for others.
 */
export class OrgSlots {
  private readonly held = new Map<string, number>();
  private readonly perOrg: number;

  constructor(perOrg: number) {
    this.perOrg = Math.max(1, Math.floor(perOrg));
  }

  /** A release function when `orgId` is under its share, else null (the caller defers). */
  take(orgId: string): (() => void) | null {
    const n = this.held.get(orgId) ?? 0;
    if (n >= this.perOrg) return null;
    this.held.set(orgId, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(orgId) ?? 1) - 1;
      if (left > 0) this.held.set(orgId, left);
      else this.held.delete(orgId);
    };
  }
}
