import type { BuildSlots } from '../../../core/ports.ts';
import type { Tables } from './tables.ts';

interface Slot {
  releaseId: string;
  orgId: string;
  engine: string;
  queuedAt: number;
  seq: number;
  startedAt: number | null;
  leaseUntil: number | null;
}

/** As migration 0033's selfdevop_build_slot_take and _free: the same fair order. */
export function memoryBuildSlots(tables: Tables, now: () => number = Date.now): BuildSlots {
  const slots = new Map<string, Slot>();
  const turns = new Map<string, number>();
  let seq = 0;
  const building = (s: Slot) => {
    const r = [...tables.releases.values()].find(
      (x) => String(x.id) === s.releaseId && String(x.orgId) === s.orgId,
    );
    return r !== undefined && (r.status === 'queued' || r.status === 'building');
  };
  return {
    take: async ({ releaseId, orgId, engine }, limit, leaseSeconds) => {
      const t = now();
      for (const s of [...slots.values()])
        if (s.engine === engine && ((s.startedAt !== null && s.leaseUntil! < t) || !building(s)))
          slots.delete(s.releaseId);
      if (!slots.has(releaseId))
        slots.set(releaseId, {
          releaseId,
          orgId,
          engine,
          queuedAt: t,
          seq: seq++,
          startedAt: null,
          leaseUntil: null,
        });
      const mine = slots.get(releaseId)!;
      if (mine.startedAt !== null) {
        mine.leaseUntil = t + leaseSeconds * 1000;
        return { granted: true };
      }
      const here = [...slots.values()].filter((s) => s.engine === engine);
      const running = here.filter((s) => s.startedAt !== null);
      const runningOf = (org: string) => running.filter((s) => s.orgId === org).length;
      const turnOf = (org: string) => turns.get(`${engine}\0${org}`) ?? -Infinity;
      const first = here
        .filter((s) => s.startedAt === null)
        .sort(
          (a, b) =>
            runningOf(a.orgId) - runningOf(b.orgId) ||
            turnOf(a.orgId) - turnOf(b.orgId) ||
            a.queuedAt - b.queuedAt ||
            a.seq - b.seq,
        )[0];
      if (running.length < Math.max(limit, 1) && first?.releaseId === releaseId) {
        mine.startedAt = t;
        mine.leaseUntil = t + leaseSeconds * 1000;
        turns.set(`${engine}\0${orgId}`, t);
        return { granted: true };
      }
      return {
        granted: false,
        running: running.map((s) => ({ releaseId: s.releaseId, orgId: s.orgId })),
        ahead: here.filter(
          (s) => s.startedAt === null && s.releaseId !== releaseId && s.seq < mine.seq,
        ).length,
      };
    },
    free: async (releaseId, orgId) => {
      if (slots.get(releaseId)?.orgId === orgId) slots.delete(releaseId);
    },
  };
}
