/**
 * Writes selfhost/images/prometheus/selfdevop.rules.json, the alert rules the Compose
 * stack's Prometheus evaluates, from core/alerts/rules.ts (one definition; JSON is YAML, so
 * Prometheus reads it as a rules file). test/core/alerts/shipped-rules.test.ts fails when
 * they differ.
 *
 * Usage: npm run prometheus:rules
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import prettier from 'prettier';
import { prometheusRuleGroups } from '../core/alerts/rules.ts';

const target = new URL('../selfhost/images/prometheus/selfdevop.rules.json', import.meta.url);
const filepath = fileURLToPath(target);
const options = (await prettier.resolveConfig(filepath)) ?? {};
await writeFile(
  target,
  await prettier.format(JSON.stringify(prometheusRuleGroups()), { ...options, filepath }),
);
process.stdout.write(`wrote ${target.pathname}\n`);
