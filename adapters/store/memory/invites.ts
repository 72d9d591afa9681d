import type { Invite, InviteWithHash, Page } from '../../../core/models.ts';
import type { InviteLookup, InviteRepo } from '../../../core/ports.ts';
import { clone } from './overlay.ts';
import type { Row, Tables } from './tables.ts';
import type { TenantView } from './tenant.ts';

const withoutHash = (row: Row): Invite => {
  const { tokenHash: _hash, ...invite } = clone(row) as unknown as InviteWithHash;
  return invite;
};

const isOpen = (r: Row) =>
  (r.acceptedAt === null || r.acceptedAt === undefined) &&
  (r.revokedAt === null || r.revokedAt === undefined);

export const memoryInviteRepo = (t: TenantView): InviteRepo => ({
  insert: async (invite) => t.insert('invites', { ...invite, email: invite.email.toLowerCase() }),
  get: async (id) => {
    const row = t.view.get('invites', id);
    return row && row.orgId === t.orgId ? withoutHash(row) : null;
  },
  list: async (page): Promise<Page<Invite>> => {
    const p = t.page<InviteWithHash>('invites', t.mine('invites'), page);
    return {
      items: p.items.map((i) => withoutHash(i as unknown as Row)),
      nextCursor: p.nextCursor,
    };
  },
  openFor: async (email) =>
    t
      .mine('invites')
      .filter((r) => r.email === email.toLowerCase() && isOpen(r))
      .sort((a, b) => (String(a.id) < String(b.id) ? -1 : 1))
      .map(withoutHash),
  revoke: async (id, at) => t.patch('invites', id, { revokedAt: at }, [], isOpen),
  accept: async (id, userId, at) => {
    if (!t.view.get('users', userId)) return false;
    return t.patch(
      'invites',
      id,
      { acceptedAt: at, acceptedBy: userId },
      [],
      (r) => isOpen(r) && Date.parse(String(r.expiresAt)) > Date.parse(at),
    );
  },
});

export const memoryInviteLookup = (tables: Tables): InviteLookup => ({
  findInviteByTokenHash: async (tokenHash) => {
    const row = [...tables.invites.values()].find((r) => r.tokenHash === tokenHash);
    return row ? withoutHash(row) : null;
  },
});
