import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { checkThreshold } from '../../../core/alerts/use-cases.ts';
import {
  cloudAlarmGaps,
  cloudWatchAlarms,
  edgeRuleMetrics,
} from '../../../core/alerts/cloudwatch-alarms.ts';
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

  it('gives every rule both a Prometheus rule and a CloudWatch alarm, or a stated reason why the cloud has none', () => {
    const prometheus = prometheusRuleGroups().groups[0]!.rules.map((r) => r.alert);
    const cloud = cloudWatchAlarms({ usage: 'selfdevop/apps', control: 'selfdevop' });
    for (const r of alertRules) {
      expect(prometheus, r.id).toContain(r.id);
      const alarms = cloud.filter((a) => a.rule === r.id);
      const reason = cloudAlarmGaps[r.id];
      // Exactly one of the two, and a reason worth reading.
      expect(alarms.length + (reason ? 1 : 0), r.id).toBe(1);
      if (reason) expect(reason.length, r.id).toBeGreaterThan(40);
    }
    // Today every rule has its alarm.
    expect(cloud.map((a) => a.rule)).toEqual(alertRules.map((r) => r.id));
  });

  it('reads the edge rules over the same window and floor in both modes (PromQL ranges, the collector’s windows)', () => {
    const exprs = Object.fromEntries(
      prometheusRuleGroups().groups[0]!.rules.map((r) => [r.alert, r.expr]),
    );
    const fiveXx = alertRules.find((r) => r.id === 'http_5xx_spike')!;
    const p95 = alertRules.find((r) => r.id === 'latency_p95')!;
    expect(fiveXx.windowSeconds).toBe(60);
    expect(exprs.http_5xx_spike).toContain('[1m]');
    expect(exprs.http_5xx_spike).not.toMatch(/\[(?!1m\])\w+\]/);
    expect(exprs.http_5xx_spike).toMatch(new RegExp(`>= ${fiveXx.floor!.events}$`));
    expect(p95.windowSeconds).toBe(300);
    expect(exprs.latency_p95).toContain('[5m]');
    // Both edge rules are per service, so their cloud figure is divided by the service's threshold.
    for (const id of Object.keys(edgeRuleMetrics))
      expect(alertRules.find((r) => r.id === id)!.perService, id).toBe(true);
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

  // promtool test rules: the rendered 5xx rule against series scraped every 5 s, as Caddy is
  // in the shipped stack. Each service is its own host; `at` is when the 5xx start.
  const rule5xx = alertRules.find((r) => r.id === 'http_5xx_spike')!;
  const caddyCount = 'caddy_http_request_duration_seconds_count';
  const serviceSeries = (service: string, ok: string, errors: string) => [
    { series: `${caddyCount}{host="${service}.example",code="200"}`, values: ok },
    { series: `${caddyCount}{host="${service}.example",code="500"}`, values: errors },
    {
      series: `selfdevop_service_host{host="${service}.example",org="o1",service="${service}",environment="production"}`,
      values: '1x60',
    },
    {
      series: `selfdevop_alert_threshold{org="o1",service="${service}",rule="http_5xx_spike"}`,
      values: `${rule5xx.defaultThreshold}x60`,
    },
  ];
  const firing = (service: string) => ({
    exp_labels: {
      org: 'o1',
      service,
      environment: 'production',
      rule: 'http_5xx_spike',
      severity: rule5xx.severity,
    },
    exp_annotations: {
      summary: rule5xx.title,
      runbook: `docs/runbooks/${rule5xx.runbook}.md`,
    },
  });
  const promtoolTest = async (tests: unknown[], rules = prometheusRuleGroups()) => {
    const dir = await mkdtemp(join(tmpdir(), 'sdo-rules-test-'));
    try {
      await writeFile(join(dir, 'rules.json'), JSON.stringify(rules));
      const file = join(dir, 'test.yml');
      await writeFile(
        file,
        JSON.stringify({ rule_files: ['rules.json'], evaluation_interval: '5s', tests }),
      );
      return await run('/usr/bin/promtool', ['test', 'rules', file]).then(
        (r) => ({ ok: true, out: r.stdout + r.stderr }),
        (e: { stdout: string; stderr: string }) => ({ ok: false, out: e.stdout + e.stderr }),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  // A quiet service: one 200 every 10 s, then a single 500 at 60 s (a 100 % share of its
  // 5-second slice, 1 in 7 of its minute) — and a quieter one whose only request is that 500.
  const quiet = {
    interval: '5s',
    input_series: [
      ...serviceSeries('quiet', '0 0+1x60', '0x11 1x49'),
      ...serviceSeries('silent', '0x60', '0x11 1x49'),
      // Three 500s in a minute out of 15: a 20 % share, still below the floor of five.
      ...serviceSeries('blip', '0x11 0+1x12 12x36', '0x11 1 2 3x46'),
    ],
    alert_rule_test: ['1m5s', '1m20s', '1m30s', '1m45s', '2m'].map((t) => ({
      eval_time: t,
      alertname: 'http_5xx_spike',
      exp_alerts: [],
    })),
  };

  it('never pages for one 500 (or three) in a quiet minute: the rule wants at least its floor of 5xx', async () => {
    expect(rule5xx.floor?.events).toBe(5);
    const r = await promtoolTest([quiet]);
    expect(r.out).toContain('SUCCESS');
    expect(r.ok).toBe(true);
    // The same series page under the bare share (the rule before the floor): the test can fail.
    const bare = prometheusRuleGroups();
    const bare5xx = bare.groups[0]!.rules.find((x) => x.alert === 'http_5xx_spike')!;
    bare5xx.expr = bare5xx.expr.replace(/ and on \(org, service, environment\) .*$/, '');
    expect(bare5xx.expr).not.toContain('increase');
    const without = await promtoolTest([quiet], bare);
    expect(without.ok).toBe(false);
    expect(without.out).toContain('http_5xx_spike');
  });

  it('still pages for a real spike 20 s after the 500s start (pending one scrape, then its for), busy or 1 req/s', async () => {
    // Switch at 60 s: `busy` 10 req/s all 500s from then; `steady` 1 req/s all 500s.
    const r = await promtoolTest([
      {
        interval: '5s',
        input_series: [
          ...serviceSeries('busy', '0+50x12 600x48', '0x12 50+50x47'),
          ...serviceSeries('steady', '0+5x12 60x48', '0x12 5+5x47'),
        ],
        alert_rule_test: [
          { eval_time: '1m', alertname: 'http_5xx_spike', exp_alerts: [] },
          // 65 s: the first 500s are scraped, the rule is pending for its 15 s.
          { eval_time: '1m15s', alertname: 'http_5xx_spike', exp_alerts: [] },
          {
            eval_time: `${60 + 5 + rule5xx.forSeconds}s`,
            alertname: 'http_5xx_spike',
            exp_alerts: [firing('busy'), firing('steady')],
          },
        ],
      },
    ]);
    expect(r.out).toContain('SUCCESS');
    expect(r.ok).toBe(true);
  });
});
