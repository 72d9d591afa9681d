/**
 * Five-field cron (minute hour day-of-month month day-of-week), read in an IANA time zone:
 * what a job's schedule may be, and when it is due. Pure: the time zone is read with the
 * language's own `Intl`, so every mode and the in-memory scheduler agree on what a schedule
 * means before pg-boss or EventBridge Scheduler is asked to keep it.
 */
import { InvalidInput } from '../errors.ts';

export interface CronMatcher {
  /** Whether `at` falls in a minute the schedule fires in (read in its time zone). */
  matches(at: Date): boolean;
}

const fields = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day-of-week', min: 0, max: 7 },
] as const;

/** The macros crontab users write, spelled out (so every scheduler gets five fields). */
export const cronMacros: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

function invalid(field: string, message: string): InvalidInput {
  return new InvalidInput(`${field}: ${message}`, { field });
}

function parseField(
  text: string,
  min: number,
  max: number,
  name: string,
  cron: string,
  field: string,
): Set<number> {
  const out = new Set<number>();
  const bad = () =>
    invalid(
      field,
      `cron ${JSON.stringify(cron)}: ${name} field ${JSON.stringify(text)} is not valid (${min}-${max}, *, a-b, */n, lists a,b)`,
    );
  for (const part of text.split(',')) {
    const m = /^(\*|\d{1,2}(?:-\d{1,2})?)(?:\/(\d{1,2}))?$/.exec(part);
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

/** Spells out a macro and trims; the text every scheduler is given. */
export function normalizeCron(cron: string): string {
  const trimmed = cron.trim().replace(/\s+/g, ' ');
  return cronMacros[trimmed.toLowerCase()] ?? trimmed;
}

/**
 * Checks a schedule and answers its normal form; InvalidInput naming `field` when it is not
 * five valid fields. Six or seven fields (a seconds field, Quartz style) and `@every` are
 * refused: a job fires at most once a minute.
 */
export function validateCron(cron: string, field = 'schedule'): string {
  const text = normalizeCron(cron);
  if (text.length === 0 || text.length > 200) throw invalid(field, 'must be a cron expression');
  if (/^@every\b/i.test(text) || /^@reboot$/i.test(text))
    throw invalid(
      field,
      `${JSON.stringify(cron)} is not supported: use five cron fields (minute hour day-of-month month day-of-week); a job fires at most once a minute`,
    );
  if (text.startsWith('@'))
    throw invalid(
      field,
      `${JSON.stringify(cron)} is not a known macro (${Object.keys(cronMacros).join(', ')})`,
    );
  const parts = text.split(' ');
  if (parts.length === 6 || parts.length === 7)
    throw invalid(
      field,
      `${JSON.stringify(cron)} has ${parts.length} fields: a seconds field would fire more often than once a minute, which jobs do not; use five fields (minute hour day-of-month month day-of-week)`,
    );
  if (parts.length !== 5)
    throw invalid(
      field,
      `${JSON.stringify(cron)} must have 5 fields (minute hour day-of-month month day-of-week), got ${parts.length}`,
    );
  parts.forEach((p, i) => {
    const f = fields[i]!;
    parseField(p, f.min, f.max, f.name, cron, field);
  });
  // EventBridge Scheduler (the cloud's) cannot say "this day of the month or this weekday";
  // refused in both modes so a job means the same wherever it runs.
  if (parts[2] !== '*' && parts[4] !== '*')
    throw invalid(
      field,
      `${JSON.stringify(cron)} restricts both day-of-month and day-of-week; restrict one of them (the other *)`,
    );
  return text;
}

/** Checks an IANA time zone name; InvalidInput naming `field` when this runtime does not know it. */
export function validateTimeZone(timeZone: string, field = 'timeZone'): string {
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$/.test(timeZone))
    throw invalid(
      field,
      `${JSON.stringify(timeZone)} is not an IANA time zone (e.g. Europe/Berlin, UTC)`,
    );
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone }).resolvedOptions().timeZone;
  } catch {
    throw invalid(
      field,
      `${JSON.stringify(timeZone)} is not a known IANA time zone (e.g. Europe/Berlin, UTC)`,
    );
  }
}

interface LocalTime {
  minute: number;
  hour: number;
  day: number;
  month: number;
  weekday: number;
}

const weekdays: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

// Making a formatter costs far more than using one; a scheduler asks every minute.
const formats = new Map<string, Intl.DateTimeFormat>();

/** The wall-clock fields of `at` in `timeZone`. */
export function localTime(at: Date, timeZone: string): LocalTime {
  if (timeZone === 'UTC')
    return {
      minute: at.getUTCMinutes(),
      hour: at.getUTCHours(),
      day: at.getUTCDate(),
      month: at.getUTCMonth() + 1,
      weekday: at.getUTCDay(),
    };
  let format = formats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      minute: 'numeric',
      hour: 'numeric',
      day: 'numeric',
      month: 'numeric',
      weekday: 'short',
    });
    formats.set(timeZone, format);
  }
  const parts = format.formatToParts(at);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return {
    minute: Number(get('minute')),
    hour: Number(get('hour')),
    day: Number(get('day')),
    month: Number(get('month')),
    weekday: weekdays[get('weekday')] ?? 0,
  };
}

/** Parses a five-field cron read in `timeZone` (UTC unless given); InvalidInput naming the bad field. */
export function parseCron(cron: string, timeZone = 'UTC', field = 'schedule'): CronMatcher {
  const text = normalizeCron(cron);
  const parts = text.split(' ');
  if (parts.length !== 5)
    throw invalid(
      field,
      `cron ${JSON.stringify(cron)} must have 5 fields (minute hour day-of-month month day-of-week)`,
    );
  const [minute, hour, dom, month, dow] = fields.map((f, i) =>
    parseField(parts[i] ?? '', f.min, f.max, f.name, cron, field),
  ) as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>];
  if (dow.has(7)) dow.add(0);
  const domAny = parts[2] === '*';
  const dowAny = parts[4] === '*';
  return {
    matches(at: Date): boolean {
      const t = localTime(at, timeZone);
      if (!minute.has(t.minute) || !hour.has(t.hour) || !month.has(t.month)) return false;
      const domHit = dom.has(t.day);
      const dowHit = dow.has(t.weekday);
      if (domAny || dowAny) return domHit && dowHit;
      return domHit || dowHit;
    },
  };
}

/**
 * The next `count` minutes the schedule fires in after `from`, looking at most `horizonDays`
 * ahead (a schedule such as `0 0 31 2 *` never fires): for the dashboard and tests.
 */
export function nextFirings(
  cron: string,
  timeZone: string,
  from: Date,
  count: number,
  horizonDays = 40,
): Date[] {
  const matcher = parseCron(cron, timeZone);
  const out: Date[] = [];
  let t = Math.floor(from.getTime() / 60_000) * 60_000 + 60_000;
  const end = from.getTime() + horizonDays * 86_400_000;
  while (out.length < count && t <= end) {
    const at = new Date(t);
    if (matcher.matches(at)) out.push(at);
    t += 60_000;
  }
  return out;
}
