import { describe, expect, it } from 'vitest';
import { InvalidInput } from '../../../core/errors.ts';
import { nextFirings, parseCron, validateCron, validateTimeZone } from '../../../core/jobs/cron.ts';

function refusal(fn: () => unknown): { message: string; details: unknown } {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInput);
    return { message: (e as InvalidInput).message, details: (e as InvalidInput).details };
  }
  throw new Error('expected InvalidInput');
}

describe('cron schedules of jobs', () => {
  it('accepts five fields and macros, answering the five-field form', () => {
    expect(validateCron('30 2 * * *')).toBe('30 2 * * *');
    expect(validateCron('  */15   8-18 * * 1-5 ')).toBe('*/15 8-18 * * 1-5');
    expect(validateCron('@daily')).toBe('0 0 * * *');
    expect(validateCron('@HOURLY')).toBe('0 * * * *');
    expect(validateCron('0 0 1,15 * *')).toBe('0 0 1,15 * *');
  });

  it('refuses a seconds field: a job fires at most once a minute', () => {
    const r = refusal(() => validateCron('* * * * * *'));
    expect(r.message).toBe(
      'schedule: "* * * * * *" has 6 fields: a seconds field would fire more often than once a minute, which jobs do not; use five fields (minute hour day-of-month month day-of-week)',
    );
    expect(r.details).toEqual({ field: 'schedule' });
    expect(refusal(() => validateCron('0 */5 * * * * 2026')).message).toContain('has 7 fields');
    expect(refusal(() => validateCron('@every 1s')).message).toContain('at most once a minute');
  });

  it('refuses an invalid expression, naming the field', () => {
    expect(refusal(() => validateCron('every day')).message).toBe(
      'schedule: "every day" must have 5 fields (minute hour day-of-month month day-of-week), got 2',
    );
    expect(refusal(() => validateCron('61 * * * *')).message).toBe(
      'schedule: cron "61 * * * *": minute field "61" is not valid (0-59, *, a-b, */n, lists a,b)',
    );
    expect(refusal(() => validateCron('0 0 * 13 *')).message).toContain('month field "13"');
    expect(refusal(() => validateCron('0 0 * * MON')).message).toContain('day-of-week field');
    expect(refusal(() => validateCron('@fortnightly')).message).toContain('not a known macro');
    // EventBridge Scheduler cannot say "the 1st or a Monday": refused in both modes alike.
    expect(refusal(() => validateCron('0 0 1 * 1')).message).toContain(
      'restricts both day-of-month and day-of-week',
    );
  });

  it('checks time zones by their IANA names', () => {
    expect(validateTimeZone('Europe/Berlin')).toBe('Europe/Berlin');
    expect(validateTimeZone('UTC')).toBe('UTC');
    const r = refusal(() => validateTimeZone('Mars/Olympus'));
    expect(r.message).toBe(
      'timeZone: "Mars/Olympus" is not a known IANA time zone (e.g. Europe/Berlin, UTC)',
    );
    expect(r.details).toEqual({ field: 'timeZone' });
    expect(refusal(() => validateTimeZone('Europe/Berlin; rm -rf /')).message).toContain(
      'is not an IANA time zone',
    );
  });

  it('reads the schedule in its time zone, daylight saving included', () => {
    const berlin = parseCron('30 2 * * *', 'Europe/Berlin');
    // Winter: 02:30 in Berlin is 01:30 UTC; summer: 00:30 UTC.
    expect(berlin.matches(new Date('2026-01-15T01:30:00Z'))).toBe(true);
    expect(berlin.matches(new Date('2026-01-15T02:30:00Z'))).toBe(false);
    expect(berlin.matches(new Date('2026-07-15T00:30:00Z'))).toBe(true);
    expect(
      parseCron('0 9 * * 1', 'America/New_York').matches(new Date('2026-03-02T14:00:00Z')),
    ).toBe(true);
  });

  it('lists the next firings in UTC', () => {
    expect(
      nextFirings('0 3 * * *', 'Asia/Kolkata', new Date('2026-01-01T00:00:00Z'), 2).map((d) =>
        d.toISOString(),
      ),
    ).toEqual(['2026-01-01T21:30:00.000Z', '2026-01-02T21:30:00.000Z']);
    expect(nextFirings('0 0 30 2 *', 'UTC', new Date('2026-01-01T00:00:00Z'), 1)).toEqual([]);
  });
});
