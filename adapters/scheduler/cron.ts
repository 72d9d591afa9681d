import { InvalidInput } from '../../core/errors.ts';

/**
 * A five-field cron expression (minute hour day-of-month month day-of-week, UTC), as the
 * in-memory scheduler needs it: `*`, numbers, ranges `a-b`, steps `/n` and lists `a,b`.
 * Day-of-week 0 and 7 are Sunday. When both day fields are restricted, either may match.
 */
export interface CronMatcher {
  matches(at: Date): boolean;
}

const fields = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day of week', min: 0, max: 7 },
] as const;

function parseField(
  text: string,
  min: number,
  max: number,
  name: string,
  cron: string,
): Set<number> {
  const out = new Set<number>();
  const bad = () =>
    new InvalidInput(
      `cron ${JSON.stringify(cron)}: ${name} field ${JSON.stringify(text)} is not valid`,
    );
  for (const part of text.split(',')) {
    const m = /^(\*|\d+(?:-\d+)?)(?:\/(\d+))?$/.exec(part);
    if (!m) throw bad();
    const [, range = '', stepText] = m;
    const step = stepText === undefined ? 1 : Number(stepText);
    let lo = min;
    let hi = max;
    if (range !== '*') {
      const [a = '', b] = range.split('-');
      lo = Number(a);
      hi = b === undefined ? (stepText === undefined ? lo : max) : Number(b);
    }
    if (step < 1 || lo < min || hi > max || lo > hi) throw bad();
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

/** Parses `cron`; throws InvalidInput naming the bad field. */
export function parseCron(cron: string): CronMatcher {
  const parts = cron.trim().split(/\s+/);
  if (parts.length !== 5) {
    throw new InvalidInput(
      `cron ${JSON.stringify(cron)} must have 5 fields (minute hour day-of-month month day-of-week)`,
    );
  }
  const [minute, hour, dom, month, dow] = fields.map((f, i) =>
    parseField(parts[i] ?? '', f.min, f.max, f.name, cron),
  ) as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>];
  if (dow.has(7)) dow.add(0);
  const domAny = parts[2] === '*';
  const dowAny = parts[4] === '*';
  return {
    matches(at: Date): boolean {
      if (
        !minute.has(at.getUTCMinutes()) ||
        !hour.has(at.getUTCHours()) ||
        !month.has(at.getUTCMonth() + 1)
      )
        return false;
      const domHit = dom.has(at.getUTCDate());
      const dowHit = dow.has(at.getUTCDay());
      if (domAny || dowAny) return domHit && dowHit;
      return domHit || dowHit;
    },
  };
}
