import * as s from '../../../core/schemas.ts';
import {
  listAlertRules,
  receiveAlerts,
  setAlertThreshold,
} from '../../../core/alerts/use-cases.ts';
import { route } from '../route.ts';

export const alertRoutes = [
  route({
    method: 'get',
    path: '/api/alerts/rules',
    summary:
      'The alert rules with their default thresholds and ranges; with serviceId, that service’s overrides and the thresholds in force',
    tag: 'alerts',
    auth: true,
    permission: 'read',
    query: s.alertRulesQuery,
    status: 200,
    handle: ({ deps, principal, query }) => listAlertRules(deps, principal, query),
  }),
  route({
    method: 'put',
    path: '/api/alerts/thresholds',
    summary:
      'Set a service’s own threshold for one rule (null: back to the default); out of the rule’s range is a 400',
    tag: 'alerts',
    auth: true,
    permission: 'manage-resources',
    body: s.setAlertThresholdInput,
    status: 200,
    handle: ({ deps, principal, body, ctx }) =>
      setAlertThreshold(deps, principal, body.serviceId, body, ctx),
  }),
  route({
    method: 'post',
    path: '/api/alerts/alertmanager',
    summary:
      'Alertmanager’s webhook receiver: firing and resolved alerts become alert.firing / alert.resolved events of the org each names',
    tag: 'alerts',
    auth: false,
    permission: 'anyone',
    body: s.alertmanagerPayload,
    status: 200,
    handle: ({ deps, body, ctx, request }) => {
      const header = request.headers.get('authorization') ?? '';
      const token = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : null;
      return receiveAlerts(deps, token, body, ctx);
    },
  }),
];
