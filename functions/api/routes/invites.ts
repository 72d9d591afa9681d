import * as s from '../../../core/schemas.ts';
import {
  acceptInvite,
  createInvite,
  listInvites,
  revokeInvite,
} from '../../../core/invites/use-cases.ts';
import { route } from '../route.ts';

export const inviteRoutes = [
  route({
    method: 'post',
    path: '/api/invites',
    summary:
      'Invite someone by email to join the org with a role (up to your own); the link works once and expires in 7 days',
    tag: 'members',
    auth: true,
    permission: 'manage-members',
    body: s.createInviteInput,
    status: 201,
    handle: ({ deps, principal, body, ctx }) => createInvite(deps, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/invites',
    summary: "The org's invites with their status (pending, expired, accepted, revoked)",
    tag: 'members',
    auth: true,
    permission: 'manage-members',
    query: s.pageQuery,
    status: 200,
    handle: ({ deps, principal, query }) => listInvites(deps, principal, query),
  }),
  route({
    method: 'delete',
    path: '/api/invites/{id}',
    summary: 'Revoke an invite: its link stops working',
    tag: 'members',
    auth: true,
    permission: 'manage-members',
    status: 204,
    handle: ({ deps, principal, params, ctx }) => revokeInvite(deps, principal, params.id!, ctx),
  }),
  route({
    method: 'post',
    path: '/api/invites/accept',
    summary:
      'Join the org an invite is for, as the signed-in user it was sent to (new users: sign up with inviteToken)',
    tag: 'members',
    auth: true,
    permission: 'signed-in',
    body: s.acceptInviteInput,
    status: 200,
    handle: ({ deps, principal, body, ctx }) => acceptInvite(deps, principal, body, ctx),
  }),
];
