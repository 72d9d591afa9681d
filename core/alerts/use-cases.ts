import { InvalidInput, NotFound } from '../errors.ts';
import { checkReceiverToken } from './targets.ts';
import { assertCan } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import { alertRuleById, alertRules, type AlertRule } from './rules.ts';

export interface AlertRuleView {
  id: string;
  title: string;
  thresholdMeaning: string;
  unit: AlertRule['unit'];
  defaultThreshold: number;
  min: number;
  max: number;
  perService: boolean;
  severity: AlertRule['severity'];
  runbook: string;
  /** With `serviceId`: the service's own threshold (null: the default applies) and the one in force. */
  override?: number | null;
  threshold?: number;
}

const viewOf = (r: AlertRule): AlertRuleView => ({
  id: r.id,
  title: r.title,
  thresholdMeaning: r.thresholdMeaning,
  unit: r.unit,
  defaultThreshold: r.defaultThreshold,
  min: r.min,
  max: r.max,
  perService: r.perService,
  severity: r.severity,
  runbook: `docs/runbooks/${r.runbook}.md`,
});

/** The rules with their defaults; with a service, its overrides and the thresholds in force. */
export async function listAlertRules(
  deps: CoreDeps,
  principal: Principal,
  query: { serviceId?: string | undefined },
): Promise<{ items: AlertRuleView[] }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  if (!query.serviceId) return { items: alertRules.map(viewOf) };
  const serviceId = query.serviceId;
  const overrides = await deps.store.withOrg(p.orgId, async (repos) => {
    if (!(await repos.services.get(serviceId))) throw new NotFound('service', serviceId);
    return repos.alertThresholds.list({ serviceId });
  });
  return {
    items: alertRules.map((r) => {
      const o = overrides.find((t) => t.rule === r.id)?.value ?? null;
      return { ...viewOf(r), override: o, threshold: o ?? r.defaultThreshold };
    }),
  };
}

/** The rule a threshold is for, or a 400 naming what is wrong with it. */
export function checkThreshold(ruleId: string, value: number | null): AlertRule {
  const rule = alertRuleById(ruleId);
  if (!rule)
    throw new InvalidInput(
      `unknown alert rule ${JSON.stringify(ruleId)}; one of ${alertRules.map((r) => r.id).join(', ')}`,
    );
  if (!rule.perService)
    throw new InvalidInput(
      `the ${rule.id} rule watches nodes or backups, not a service: its threshold is not set per service`,
    );
  if (value !== null && (!Number.isFinite(value) || value < rule.min || value > rule.max))
    throw new InvalidInput(
      `threshold ${value} for ${rule.id} is out of range: ${rule.thresholdMeaning} must be between ${rule.min} and ${rule.max}`,
      { rule: rule.id, min: rule.min, max: rule.max },
    );
  return rule;
}

/** Sets (or, with null, removes) a service's own threshold for one rule. */
export async function setAlertThreshold(
  deps: CoreDeps,
  principal: Principal,
  serviceId: string,
  input: { rule: string; value: number | null },
  ctx: RequestContext,
): Promise<AlertRuleView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const rule = checkThreshold(input.rule, input.value);
  await deps.store.withOrg(p.orgId, async (repos) => {
    if (!(await repos.services.get(serviceId))) throw new NotFound('service', serviceId);
    if (input.value === null) await repos.alertThresholds.remove(serviceId, rule.id);
    else
      await repos.alertThresholds.set({
        orgId: p.orgId,
        serviceId,
        rule: rule.id,
        value: input.value,
        updatedAt: deps.clock.now().toISOString(),
      });
    await recordAudit(deps, repos, p, ctx, {
      action: input.value === null ? 'alert_threshold.reset' : 'alert_threshold.set',
      targetType: 'service',
      targetId: serviceId,
      data: { rule: rule.id, value: input.value },
    });
  });
  return {
    ...viewOf(rule),
    override: input.value,
    threshold: input.value ?? rule.defaultThreshold,
  };
}

// ---------------------------------------------------------------- Alertmanager's receiver

/** Alertmanager's webhook body (version 4), as far as it is read. */
export interface AlertmanagerPayload {
  status: string;
  alerts: {
    status: string;
    labels: Record<string, string>;
    annotations?: Record<string, string>;
    startsAt?: string;
    endsAt?: string;
    fingerprint?: string;
  }[];
}

/** One notification per alert at most; a larger body is a misconfigured group, cut here. */
export const maxAlertsPerPost = 200;

/**
 * Turns Alertmanager's firing and resolved alerts into `alert.firing` / `alert.resolved`
 * events of the org each names (its `org` label), which reach the org's notification
 * channels and webhooks with their grouping. An alert without an org (a platform alert),
 * or naming an org or service that does not exist, is counted as ignored, not an error,
 * so Alertmanager does not retry it forever.
 */
export async function receiveAlerts(
  deps: CoreDeps,
  token: string | null,
  payload: AlertmanagerPayload,
  ctx: RequestContext,
): Promise<{ accepted: number; ignored: number }> {
  checkReceiverToken(deps, token);
  let accepted = 0;
  let ignored = 0;
  for (const alert of payload.alerts.slice(0, maxAlertsPerPost)) {
    const orgId = alert.labels.org;
    const rule = alertRuleById(alert.labels.rule ?? alert.labels.alertname ?? '');
    const state = alert.status === 'resolved' ? 'resolved' : 'firing';
    if (!orgId || !rule) {
      ignored++;
      continue;
    }
    const serviceId = alert.labels.service ?? null;
    const done = await deps.store.withOrg(orgId, async (repos) => {
      if (!(await repos.orgs.get())) return false;
      if (serviceId && !(await repos.services.get(serviceId))) return false;
      await recordAudit(deps, repos, { actorType: 'system', actorId: 'alertmanager' }, ctx, {
        action: `alert.${state}`,
        targetType: serviceId ? 'service' : alert.labels.node ? 'node' : 'org',
        targetId: serviceId ?? alert.labels.node ?? null,
        data: {
          rule: rule.id,
          title: rule.title,
          severity: rule.severity,
          serviceId,
          environmentId: alert.labels.environment ?? null,
          nodeId: alert.labels.node ?? null,
          domain: alert.labels.domain ?? null,
          summary: alert.annotations?.summary ?? rule.title,
          startsAt: alert.startsAt ?? null,
          endsAt: state === 'resolved' ? (alert.endsAt ?? null) : null,
          fingerprint: alert.fingerprint ?? null,
        },
      });
      return true;
    });
    if (done) accepted++;
    else ignored++;
  }
  ignored += Math.max(0, payload.alerts.length - maxAlertsPerPost);
  return { accepted, ignored };
}
