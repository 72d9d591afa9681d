import {
  createDeployJob,
  getDeployJob,
  listDeployJobs,
} from '../../../core/deploy-jobs/use-cases.ts';
import { createReleaseInput } from '../../../core/releases/create.ts';
import * as s from '../../../core/schemas.ts';
import { route } from '../route.ts';

export const deployJobRoutes = [
  route({
    method: 'post',
    path: '/api/deploy-jobs',
    summary: 'Queue a deploy (the queue-level view of POST /api/releases)',
    tag: 'releases',
    auth: true,
    permission: 'deploy',
    body: createReleaseInput,
    status: 202,
    handle: ({ deps, principal, body, ctx }) => createDeployJob(deps.release, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/deploy-jobs',
    summary: 'List deploy jobs',
    tag: 'releases',
    auth: true,
    permission: 'read',
    query: s.pageQuery,
    status: 200,
    handle: ({ deps, principal, query }) => listDeployJobs(deps.release, principal, query),
  }),
  route({
    method: 'get',
    path: '/api/deploy-jobs/{id}',
    summary: 'A deploy job: its release, status and attempts',
    tag: 'releases',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => getDeployJob(deps.release, principal, params.id!),
  }),
];
