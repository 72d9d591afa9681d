/**
 * The Compose stack's Prometheus configuration is the one core/alerts/prometheus-config.ts
 * renders (the same function the real-scrape tests render with loopback addresses), and
 * Prometheus's own checker accepts it: the shipped file as it is (syntax: its files exist
 * only inside the image), and the same configuration with real rule and token files, so
 * the rules file and every referenced file are checked too.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { composePrometheusTargets, prometheusConfig } from '../../core/alerts/prometheus-config.ts';
import { prometheusRuleGroups } from '../../core/alerts/rules.ts';
import { firstMessageWaitSeconds } from '../../core/notification-channels/notify.ts';
import { promtoolBin } from '../support/prometheus.ts';
import { available } from '../support/services.ts';

const run = promisify(execFile);
const shippedFile = new URL('../../selfhost/images/prometheus/prometheus.yml', import.meta.url);

describe('the shipped Prometheus configuration (selfhost/images/prometheus/prometheus.yml)', () => {
  it('is what prometheusConfig renders for the Compose stack (run npm run prometheus:config after a change)', async () => {
    const shipped: unknown = parse(await readFile(shippedFile, 'utf8'));
    expect(shipped).toEqual(prometheusConfig(composePrometheusTargets));
  });

  it('scrapes the worker as well as the API and Caddy, each figure naming every org with the token', () => {
    const jobs = prometheusConfig(composePrometheusTargets).scrape_configs;
    expect(jobs.map((j) => [j.job_name, j.static_configs[0]!.targets[0]])).toEqual([
      ['caddy', 'caddy:2019'],
      ['selfdevop-api', 'api:3000'],
      ['selfdevop-alert-targets', 'api:3000'],
      ['selfdevop-worker', 'worker:9464'],
    ]);
    for (const j of jobs.filter((x) => x.job_name.match(/alert-targets|worker/)))
      expect(j.authorization).toEqual({ credentials_file: '/prometheus/.alert-receiver-token' });
  });
});

const shippedAlertmanager = new URL(
  '../../selfhost/images/alertmanager/alertmanager.yml',
  import.meta.url,
);
const seconds = (d: string) => {
  const m = /^(\d+)s$/.exec(d);
  if (!m) throw new Error(`not a duration in seconds: ${d}`);
  return Number(m[1]);
};

describe('the shipped alert path adds up to at most 45 s (issue 16: alertToNotificationSeconds)', () => {
  it('two scrapes of Caddy, an evaluation, the 5xx rule’s for, group_wait and the channel’s first wait', async () => {
    const prom = prometheusConfig(composePrometheusTargets);
    const caddy = prom.scrape_configs.find((j) => j.job_name === 'caddy')!;
    const am = parse(await readFile(shippedAlertmanager, 'utf8')) as {
      route: { group_wait: string; group_by: string[] };
    };
    const rule = prometheusRuleGroups().groups[0]!.rules.find((r) => r.alert === 'http_5xx_spike')!;
    // A rate needs two samples of the new 5xx series, then the next evaluation sees it.
    const worst =
      2 * seconds(caddy.scrape_interval ?? prom.global.scrape_interval) +
      seconds(prom.global.evaluation_interval) +
      seconds(rule.for) +
      seconds(am.route.group_wait) +
      firstMessageWaitSeconds;
    expect(worst).toBeLessThanOrEqual(40); // 5 s left for the receiver, the queue and the send
    // The rule reacts within its window: a 1-minute rate, not 5.
    expect(rule.expr).toContain('[1m]');
    expect(am.route.group_by).toContain('service');
  });
});

describe.skipIf(!(await available('prometheus')))('amtool check-config', () => {
  it('accepts the shipped Alertmanager file with its token file in place', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdo-amcfg-'));
    try {
      const tokenFile = join(dir, 'token');
      await writeFile(tokenFile, 'secret');
      const config = join(dir, 'alertmanager.yml');
      await writeFile(
        config,
        (await readFile(shippedAlertmanager, 'utf8')).replace(
          '/alertmanager/.alert-receiver-token',
          tokenFile,
        ),
      );
      const { stdout } = await run('/usr/bin/amtool', ['check-config', config]);
      expect(stdout).toContain('SUCCESS');
      await writeFile(config, 'route: {group_wait: soon}\n');
      await expect(run('/usr/bin/amtool', ['check-config', config])).rejects.toMatchObject({
        stdout: expect.stringContaining('FAILED: not a valid duration string: "soon"'),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!(await available('prometheus')))('promtool check config', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sdo-promcfg-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('accepts the shipped file’s syntax', async () => {
    const copy = join(dir, 'shipped.yml');
    await writeFile(copy, await readFile(shippedFile, 'utf8'));
    const { stdout } = await run(promtoolBin, ['check', 'config', '--syntax-only', copy]);
    expect(stdout).toContain('SUCCESS');
  });

  it('accepts the same configuration with its rules file and token file in place, and refuses a broken one', async () => {
    const ruleFile = join(dir, 'selfdevop.rules.json');
    const tokenFile = join(dir, 'token');
    await writeFile(ruleFile, JSON.stringify(prometheusRuleGroups()));
    await writeFile(tokenFile, 'secret');
    const config = join(dir, 'prometheus.yml');
    await writeFile(
      config,
      JSON.stringify(prometheusConfig({ ...composePrometheusTargets, ruleFile, tokenFile })),
    );
    const { stdout } = await run(promtoolBin, ['check', 'config', config]);
    expect(stdout).toContain(`SUCCESS: ${config} is valid prometheus config file syntax`);
    expect(stdout).toMatch(/SUCCESS: \d+ rules found/);
    // The checker is not a rubber stamp: a rule file that is gone fails it.
    await rm(ruleFile);
    await expect(run(promtoolBin, ['check', 'config', config])).rejects.toThrow(
      /selfdevop\.rules\.json/,
    );
  });
});
