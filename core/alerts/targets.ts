import { CoreError } from '../errors.ts';
import { defaultHosts } from '../releases/plan.ts';
import { sameSecret } from '../builds/push.ts';
import type { AlertTarget, Store } from '../ports.ts';
import { alertRules, metricNames } from './rules.ts';

/** A label value in the text exposition format. */
const q = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;

/**
 * The join the alert rules need, as Prometheus text: `selfdevop_service_host` (1 per host a
 * live service environment answers on, labelled with its org, service and environment) and
 * `selfdevop_alert_threshold` (each per-service rule's threshold in force for every live
 * service). Bounded by the live service environments and their routed hosts.
 */
export function renderAlertTargets(targets: AlertTarget[], edgeDomain: string): string {
  const hosts: string[] = [`# TYPE ${metricNames.serviceHost} gauge`];
  const thresholds: string[] = [`# TYPE ${metricNames.threshold} gauge`];
  const seen = new Set<string>();
  for (const t of targets) {
    const own = `org=${q(t.orgId)},service=${q(t.serviceId)},environment=${q(t.environmentId)}`;
    const all = [
      ...defaultHosts({
        service: { id: t.serviceId, name: t.serviceName },
        environment: { name: t.environmentName },
        edgeDomain,
      }),
      ...t.customHosts.map((h) => h.toLowerCase()),
    ];
    for (const h of all) hosts.push(`${metricNames.serviceHost}{${own},host=${q(h)}} 1`);
    if (seen.has(t.serviceId)) continue;
    seen.add(t.serviceId);
    for (const r of alertRules.filter((x) => x.perService)) {
      const v = t.thresholds[r.id] ?? r.defaultThreshold;
      thresholds.push(
        `${metricNames.threshold}{org=${q(t.orgId)},service=${q(t.serviceId)},rule=${q(r.id)}} ${v}`,
      );
    }
  }
  return [...hosts, ...thresholds, ''].join('\n');
}

/**
 * Serves the join to Prometheus only: it names every org's hosts, so it takes the same
 * bearer token as the alert receiver, never a tenant's credentials.
 */
export async function exportAlertTargets(
  deps: { store: Store; alertReceiverToken?: string; config: { edgeDomain: string } },
  token: string | null,
): Promise<string> {
  checkReceiverToken(deps, token);
  const targets = (await deps.store.alertTargetLookup?.alertTargets()) ?? [];
  return renderAlertTargets(targets, deps.config.edgeDomain);
}

/**
 * The one credential of Prometheus and Alertmanager toward selfdevop. The errors state
 * facts about the receiver, not about a caller (this route has none but them).
 */
export function checkReceiverToken(
  deps: { alertReceiverToken?: string },
  token: string | null,
): void {
  if (!deps.alertReceiverToken)
    throw new CoreError(
      'not_found',
      'alert_receiver_not_configured',
      'this installation takes no alerts: ALERT_RECEIVER_TOKEN is not set',
    );
  if (token === null || !sameSecret(token, deps.alertReceiverToken))
    throw new CoreError(
      'unauthorized',
      'alert_receiver_token_invalid',
      'only Prometheus and Alertmanager call this, with the bearer token ALERT_RECEIVER_TOKEN',
    );
}
