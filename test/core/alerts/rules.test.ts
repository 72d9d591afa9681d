import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { checkThreshold } from '../../../core/alerts/use-cases.ts';
import { alertRules, prometheusRuleGroups } from '../../../core/alerts/rules.ts';
import { InvalidInput } from '../../../core/errors.ts';
import { available } from '../../support/services.ts';

const run = promisify(execFile);

describe('the alert rules (one definition)', () => {
  it('names a runbook that exists for every rule, and a default inside its own range', () => {
    for (const r of alertRules) {
      expect(
        existsSync(new URL(`../../../docs/runbooks/${r.runbook}.md`, import.meta.url)),
        r.id,
      ).toBe(true);
      expect(r.defaultThreshold, r.id).toBeGreaterThanOrEqual(r.min);
      expect(r.defaultThreshold, r.id).toBeLessThanOrEqual(r.max);
    }
  });

  it('renders one Prometheus alert per rule, labelled with the rule and its severity', () => {
    const groups = prometheusRuleGroups();
    expect(groups.groups).toHaveLength(1);
    expect(groups.groups[0]!.rules.map((r) => [r.alert, r.labels])).toEqual(
      alertRules.map((r) => [r.id, { rule: r.id, severity: r.severity }]),
    );
  });

  it('keeps label sets bounded: no rule groups by a per-request label', () => {
    for (const r of prometheusRuleGroups().groups[0]!.rules) {
      expect(r.expr, r.alert).not.toMatch(/\b(path|uri|request_id|user_agent)\b/);
    }
  });

  it('refuses a threshold out of range, for an unknown rule, or for a node rule, naming the bounds', () => {
    expect(() => checkThreshold('latency_p95', 0.5)).not.toThrow();
    expect(() => checkThreshold('latency_p95', null)).not.toThrow();
    const e = (() => {
      try {
        checkThreshold('latency_p95', 1000);
      } catch (err) {
        return err as InvalidInput;
      }
    })();
    expect(e).toBeInstanceOf(InvalidInput);
    expect(e!.message).toContain('between 0.01 and 120');
    expect(() => checkThreshold('http_5xx_spike', -1)).toThrow(InvalidInput);
    expect(() => checkThreshold('http_5xx_spike', Number.NaN)).toThrow(InvalidInput);
    expect(() => checkThreshold('nope', 1)).toThrow(/unknown alert rule/);
    expect(() => checkThreshold('disk_full', 0.9)).toThrow(/not set per service/);
  });
});

describe.skipIf(!(await available('prometheus')))('the rendered rules file (real promtool)', () => {
  it('passes promtool check rules', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdo-rules-'));
    try {
      const file = join(dir, 'selfdevop.rules.yml');
      // JSON is YAML: the file the images ship is this exact text.
      await writeFile(file, JSON.stringify(prometheusRuleGroups(), null, 2));
      const { stdout } = await run('/usr/bin/promtool', ['check', 'rules', file]);
      expect(stdout).toContain(`SUCCESS: ${alertRules.length} rules found`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
