import * as z from 'zod';
import * as s from '../../../core/schemas.ts';
import { listAuditEvents } from '../../../core/audit/use-cases.ts';
import { route } from '../route.ts';

export const auditRoutes = [
  route({
    method: 'get',
    path: '/api/audit-events',
    summary: 'The audit trail, newest last; filter by action or target',
    tag: 'audit',
    auth: true,
    permission: 'read',
    query: s.pageQuery.extend({
      action: z.string().max(100).optional(),
      targetId: s.id.optional(),
    }),
    status: 200,
    handle: ({ deps, principal, query }) =>
      listAuditEvents(deps, principal, query, { action: query.action, targetId: query.targetId }),
  }),
];
