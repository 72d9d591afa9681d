import * as s from '../../../core/schemas.ts';
import {
  changeMemberRole,
  listMembers,
  removeMember,
  transferOwnership,
} from '../../../core/members/use-cases.ts';
import { route } from '../route.ts';

export const memberRoutes = [
  route({
    method: 'get',
    path: '/api/members',
    summary: "The org's members: each person's email and role",
    tag: 'members',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal }) => listMembers(deps, principal),
  }),
  route({
    method: 'patch',
    path: '/api/members/{userId}',
    summary: "Change a member's role (up to your own); the last owner cannot be demoted",
    tag: 'members',
    auth: true,
    permission: 'manage-members',
    body: s.changeMemberRoleInput,
    status: 200,
    handle: ({ deps, principal, params, body, ctx }) =>
      changeMemberRole(deps, principal, params.userId!, body, ctx),
  }),
  route({
    method: 'delete',
    path: '/api/members/{userId}',
    summary:
      'Remove a member, or leave the org with your own user id (any role); the last owner cannot',
    tag: 'members',
    auth: true,
    permission: 'manage-members',
    status: 204,
    handle: ({ deps, principal, params, ctx }) =>
      removeMember(deps, principal, params.userId!, ctx),
  }),
  route({
    method: 'post',
    path: '/api/members/{userId}/transfer-ownership',
    summary: 'Make another member the owner; you become an admin',
    tag: 'members',
    auth: true,
    permission: 'manage-org',
    status: 200,
    handle: ({ deps, principal, params, ctx }) =>
      transferOwnership(deps, principal, params.userId!, ctx),
  }),
];
