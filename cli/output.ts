/** Plain-text output: aligned tables for people, JSON (`--json`) for scripts. */
export interface Output {
  out(line: string): void;
  err(line: string): void;
}

export const stdio: Output = {
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
};

export function json(o: Output, value: unknown): void {
  o.out(JSON.stringify(value, null, 2));
}

export function table(
  o: Output,
  headers: string[],
  rows: (string | number | null | undefined)[][],
  empty: string,
): void {
  if (rows.length === 0) {
    o.out(empty);
    return;
  }
  const cells = [
    headers,
    ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c)))),
  ];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  for (const r of cells)
    o.out(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
}

/** Seconds between two ISO times, one decimal: "1.4s". */
export function duration(
  startedAt: string | null | undefined,
  finishedAt: string | null | undefined,
): string {
  if (!startedAt) return '';
  const ms = (finishedAt ? Date.parse(finishedAt) : Date.now()) - Date.parse(startedAt);
  return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
}

/** `applies` of a PATCH answer as lines: which fields act now, which with the next release. */
export function appliesLines(applies: Record<string, string>): string[] {
  const now = Object.keys(applies).filter((k) => applies[k] === 'now');
  const next = Object.keys(applies).filter((k) => applies[k] === 'next_release');
  return [
    ...(now.length ? [`applied now: ${now.join(', ')}`] : []),
    ...(next.length ? [`with the next release: ${next.join(', ')}`] : []),
  ];
}
