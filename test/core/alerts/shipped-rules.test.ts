import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { prometheusRuleGroups } from '../../../core/alerts/rules.ts';

describe('the shipped Prometheus rules (selfhost/images/prometheus/selfdevop.rules.json)', () => {
  it('are the rules core/alerts/rules.ts renders (run npm run prometheus:rules after a change)', async () => {
    const shipped: unknown = JSON.parse(
      await readFile(
        new URL('../../../selfhost/images/prometheus/selfdevop.rules.json', import.meta.url),
        'utf8',
      ),
    );
    expect(shipped).toEqual(prometheusRuleGroups());
  });
});
