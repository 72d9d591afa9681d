import { getEdgeStatus } from '../../../core/edge/use-cases.ts';
import { route } from '../route.ts';

export const edgeRoutes = [
  route({
    method: 'get',
    path: '/api/edge',
    summary:
      "The edge as your org sees it: reachable, last rebuild from the database, your routes (expected, present, missing) and your domains' certificates with their expiry",
    tag: 'edge',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal }) => getEdgeStatus(deps, principal),
  }),
];
