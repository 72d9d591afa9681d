import { getNodeMetrics } from '../../../core/services/metrics.ts';
import * as s from '../../../core/schemas.ts';
import { createNode, getNode, listNodes, updateNode } from '../../../core/nodes/use-cases.ts';
import { route } from '../route.ts';
import { drainNode, undrainNode } from '../../../core/nodes/drain.ts';
import {
  readNodeCluster,
  requestMemberDrain,
  requestMemberUndrain,
} from '../../../core/nodes/cluster.ts';
import { deleteNode } from '../../../core/nodes/delete.ts';

export const nodeRoutes = [
  route({
    method: 'post',
    path: '/api/nodes',
    summary:
      "Register a Docker host, or with kind: swarm a Swarm cluster by one of its managers (releases then run as Swarm services); tcp:// needs tls {ca, cert, key}, ssh:// needs ssh {privateKey, hostKey}. unix:// sockets and loopback engines or addresses are the installation operator's (400 node_address_refused for anyone else); link-local and 0.0.0.0 never; private ranges not from tenants in the cloud or with open signup",
    tag: 'nodes',
    auth: true,
    permission: 'manage-nodes',
    body: s.createNodeInput,
    status: 201,
    handle: ({ deps, principal, body, ctx }) => createNode(deps, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/nodes',
    summary: 'List nodes',
    tag: 'nodes',
    auth: true,
    permission: 'read',
    query: s.pageQuery,
    status: 200,
    handle: ({ deps, principal, query }) => listNodes(deps, principal, query),
  }),
  route({
    method: 'get',
    path: '/api/nodes/{id}',
    summary: 'A node',
    tag: 'nodes',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => getNode(deps, principal, params.id!),
  }),
  route({
    method: 'patch',
    path: '/api/nodes/{id}',
    summary:
      'Change a node: name and labels (at once), address (judged as at registration; releases started from now on use it), TLS or SSH credentials (rotation, write-only). `applies` says when each field takes effect',
    tag: 'nodes',
    auth: true,
    permission: 'manage-nodes',
    body: s.updateNodeInput,
    status: 200,
    handle: ({ deps, principal, params, body, ctx }) =>
      updateNode(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'delete',
    path: '/api/nodes/{id}',
    summary:
      'Forget a node (its containers are not touched). 409 node_holds_replicas (naming each service, release and replica) while replicas are placed on it: drain it first; a lost node is deleted with force=true once every service it held serves on another node (its replicas there are written off and restored elsewhere). 409 node_holds_data_services while a data service lives on it',
    tag: 'nodes',
    auth: true,
    permission: 'manage-nodes',
    query: s.deleteNodeQuery,
    status: 204,
    handle: async ({ deps, principal, params, query, ctx }) => {
      await deleteNode(deps.release, principal, params.id!, query, ctx);
    },
  }),
  route({
    method: 'post',
    path: '/api/nodes/{id}/drain',
    summary:
      'Drain a node: it takes no new replicas, and the ones it holds are started elsewhere, health-gated, switched to, then stopped (202; 409 when it is the last node that takes replicas, or they do not fit elsewhere)',
    tag: 'nodes',
    auth: true,
    permission: 'manage-nodes',
    status: 202,
    handle: ({ deps, principal, params, ctx }) =>
      drainNode(deps.release, principal, params.id!, ctx),
  }),
  route({
    method: 'post',
    path: '/api/nodes/{id}/undrain',
    summary: 'Take a node out of drain: it takes new replicas again (nothing moves back by itself)',
    tag: 'nodes',
    auth: true,
    permission: 'manage-nodes',
    status: 200,
    handle: ({ deps, principal, params, ctx }) =>
      undrainNode(deps.release, principal, params.id!, ctx),
  }),
  route({
    method: 'get',
    path: '/api/nodes/{id}/metrics',
    summary:
      "A node's CPU, memory and disk over the last hour, day or week (range=1h|1d|1w); without a metrics backend, what to install",
    tag: 'nodes',
    auth: true,
    permission: 'read',
    query: s.nodeMetricsQuery,
    status: 200,
    handle: ({ deps, principal, params, query }) =>
      getNodeMetrics(deps, principal, params.id!, query),
  }),
  route({
    method: 'get',
    path: '/api/nodes/{id}/cluster',
    summary:
      "A Swarm node's cluster, read live from its manager: each member's hostname, address, role (manager/worker, leader), availability (active/pause/drain), state and labels; available: false with the reason when the manager does not answer; 409 node_not_swarm for an engine. The cloud API reads it through the worker function, which reaches the manager",
    tag: 'nodes',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => readNodeCluster(deps, principal, params.id!),
  }),
  route({
    method: 'post',
    path: '/api/nodes/{id}/cluster/members/{member}/drain',
    summary:
      "Swarm's drain of one member of a Swarm node (member: its id or hostname): its tasks leave the edge, the edge finishes their requests, then Swarm's availability is set to drain and Swarm runs them on other members; each joins the edge once it answers its health path (202; leaving and kept name the replicas; 404 cluster_member_not_found; 409 last_available_member when no other member is active and ready, swarm_manager_unreachable when the manager does not answer (nothing changed), node_not_swarm for an engine). The cloud API hands it to the worker function and answers alike; 503 swarm_worker_unavailable when the worker has not answered within 25 s (the drain goes on there)",
    tag: 'nodes',
    auth: true,
    permission: 'manage-nodes',
    status: 202,
    handle: ({ deps, principal, params, ctx }) =>
      requestMemberDrain(deps, principal, params.id!, params.member!, ctx),
  }),
  route({
    method: 'post',
    path: '/api/nodes/{id}/cluster/members/{member}/undrain',
    summary:
      "Sets a Swarm member's availability back to active: it takes new tasks again (Swarm moves nothing back by itself); 404 cluster_member_not_found, 409 swarm_manager_unreachable, node_not_swarm for an engine; in the cloud, through the worker function",
    tag: 'nodes',
    auth: true,
    permission: 'manage-nodes',
    status: 200,
    handle: ({ deps, principal, params, ctx }) =>
      requestMemberUndrain(deps, principal, params.id!, params.member!, ctx),
  }),
];
