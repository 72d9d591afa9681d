import type { ControlBackup, ControlBackupSettings } from '../../../core/models.ts';
import type { ControlBackupRepo } from '../../../core/ports.ts';

/** The install's own backups, in memory (copies in and out, like the other memory repos). */
export function memoryControlBackupRepo(): ControlBackupRepo {
  const rows = new Map<string, ControlBackup>();
  let settings: ControlBackupSettings | null = null;
  const copy = <T>(v: T): T => structuredClone(v);
  return {
    async insert(b) {
      if (rows.has(b.id)) throw new Error(`control backup ${b.id} exists`);
      rows.set(b.id, copy(b));
    },
    async get(id) {
      const b = rows.get(id);
      return b ? copy(b) : null;
    },
    async list() {
      return [...rows.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map(copy);
    },
    async update(id, patch) {
      const b = rows.get(id);
      if (!b) return;
      const defined = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
      rows.set(id, { ...b, ...copy(defined) });
    },
    async delete(id) {
      return rows.delete(id);
    },
    async settings() {
      return settings ? copy(settings) : null;
    },
    async saveSettings(s) {
      settings = copy(s);
    },
  };
}
