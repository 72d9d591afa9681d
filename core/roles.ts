import { Forbidden } from './errors.ts';
import type { Role } from './models.ts';

/** What each role may do; a role includes everything the roles below it may. */
const rank: Record<Role, number> = { viewer: 0, deployer: 1, admin: 2, owner: 3 };

export const permissions = {
  read: 'viewer',
  deploy: 'deployer',
  'manage-resources': 'deployer',
  'manage-secrets': 'deployer',
  'manage-nodes': 'admin',
  'manage-registries': 'admin',
  'manage-keys': 'admin',
  'manage-members': 'admin',
  'manage-webhooks': 'admin',
  'manage-notifications': 'admin',
  'manage-org': 'owner',
} as const satisfies Record<string, Role>;

export type Permission = keyof typeof permissions;

export const can = (role: Role, permission: Permission): boolean =>
  rank[role] >= rank[permissions[permission]];

export function assertCan(role: Role, permission: Permission): void {
  if (!can(role, permission)) throw new Forbidden(permission.replace('-', ' '), role);
}

/** A key, an invite or a role change may not carry more power than the person who makes it. */
export const canGrant = (granter: Role, granted: Role): boolean => rank[granter] >= rank[granted];
