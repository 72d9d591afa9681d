import * as s from '../../../core/schemas.ts';
import {
  createJob,
  deleteJob,
  getJob,
  listJobRuns,
  listJobs,
  runJobNow,
  updateJob,
} from '../../../core/jobs/use-cases.ts';
import { route } from '../route.ts';

const jobsQuery = s.pageQuery.extend({ serviceId: s.id.optional(), projectId: s.id.optional() });

export const jobRoutes = [
  route({
    method: 'post',
    path: '/api/jobs',
    summary:
      'Create a cron job of a service environment: a five-field schedule read in timeZone, a command run in a one-off container of the serving release',
    tag: 'jobs',
    auth: true,
    permission: 'manage-resources',
    body: s.createJobInput,
    status: 201,
    handle: ({ deps, principal, body, ctx }) => createJob(deps, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/jobs',
    summary: "The org's cron jobs, optionally of one service or project, with their next runs",
    tag: 'jobs',
    auth: true,
    permission: 'read',
    query: jobsQuery,
    status: 200,
    handle: ({ deps, principal, query }) => listJobs(deps, principal, query),
  }),
  route({
    method: 'get',
    path: '/api/jobs/{id}',
    summary: 'A cron job and its next runs',
    tag: 'jobs',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => getJob(deps, principal, params.id!),
  }),
  route({
    method: 'patch',
    path: '/api/jobs/{id}',
    summary: 'Change a cron job (schedule, timeZone, command, overlap, timeoutSeconds, retries)',
    tag: 'jobs',
    auth: true,
    permission: 'manage-resources',
    body: s.updateJobInput,
    status: 200,
    handle: ({ deps, principal, params, body, ctx }) =>
      updateJob(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'delete',
    path: '/api/jobs/{id}',
    summary: 'Delete a cron job, its schedule and its run history',
    tag: 'jobs',
    auth: true,
    permission: 'manage-resources',
    status: 204,
    handle: ({ deps, principal, params, ctx }) => deleteJob(deps, principal, params.id!, ctx),
  }),
  route({
    method: 'post',
    path: '/api/jobs/{id}/run',
    summary: 'Run the job now (202): the run appears in its history when a worker starts it',
    tag: 'jobs',
    auth: true,
    permission: 'deploy',
    status: 202,
    handle: ({ deps, principal, params, ctx }) => runJobNow(deps, principal, params.id!, ctx),
  }),
  route({
    method: 'get',
    path: '/api/jobs/{id}/runs',
    summary:
      "The job's runs, oldest first (the newest 100 kept): status, exit code, duration, log tail",
    tag: 'jobs',
    auth: true,
    permission: 'read',
    query: s.pageQuery,
    status: 200,
    handle: ({ deps, principal, params, query }) => listJobRuns(deps, principal, params.id!, query),
  }),
];
