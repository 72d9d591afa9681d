import type { Hono } from 'hono';
import { html } from 'hono/html';
import { ApiFailure, type ApiFetch } from '../api.ts';
import { action, view } from '../handler.ts';
import { badge, when } from '../layout.ts';
import { field, flash, param, render } from '../session.ts';

interface Member {
  userId: string;
  email: string;
  role: string;
  createdAt: string;
}

interface Invite {
  id: string;
  email: string;
  role: string;
  status: 'pending' | 'expired' | 'accepted' | 'revoked';
  expiresAt: string;
}

const roles = ['viewer', 'deployer', 'admin', 'owner'];
const rank = (role: string) => roles.indexOf(role);

/**
 * The org's people: everyone sees who is in it; admins and owners change roles, remove
 * members and invite (the API refuses the rest, and the page offers only what it allows).
 */
export function registerMembers(app: Hono, fetchApi: ApiFetch): void {
  app.get(
    '/dashboard/members',
    view(fetchApi, async (c, s) => {
      const { items: members } = await s.api.get<{ items: Member[] }>('/api/members');
      const me = members.find((m) => m.userId === s.userId);
      const myRank = rank(me?.role ?? 'viewer');
      const manages = myRank >= rank('admin');
      const owns = me?.role === 'owner';
      const invites = manages
        ? (await s.api.all<Invite>('/api/invites')).filter((i) => i.status === 'pending')
        : [];
      const grantable = roles.filter((r) => rank(r) <= myRank);
      const body = html`<h1>Members</h1>
        <p>
          The people of this organization and their roles: viewers read, deployers deploy, admins
          also manage nodes, keys, webhooks and members, owners also the organization.
        </p>
        <table>
          <thead>
            <tr>
              <th scope="col">Email</th>
              <th scope="col">Role</th>
              <th scope="col">Joined</th>
              <th scope="col"><span class="visually-hidden">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            ${members.map((m) => {
              const self = m.userId === s.userId;
              const canTouch = manages && rank(m.role) <= myRank && !self;
              return html`<tr>
                <td>${m.email}${self ? html` <span class="hint">(you)</span>` : ''}</td>
                <td>
                  ${
                    canTouch
                      ? html`<form
                          method="post"
                          action="/dashboard/members/${m.userId}/role"
                          class="inline"
                        >
                          <select name="role" aria-label="Role of ${m.email}">
                            ${grantable.map((r) => html`<option value="${r}" ${r === m.role ? 'selected' : ''}>${r}</option>`)}
                          </select>
                          <button
                            type="submit"
                            class="secondary"
                            aria-label="Change role of ${m.email}"
                          >
                            Change
                          </button>
                        </form>`
                      : m.role
                  }
                </td>
                <td>${when(m.createdAt)}</td>
                <td>
                  ${
                    canTouch
                      ? html`<form
                          method="post"
                          action="/dashboard/members/${m.userId}/remove"
                          class="inline"
                          data-confirm="Remove ${m.email} from this organization?"
                        >
                          <button type="submit" class="secondary" aria-label="Remove ${m.email}">
                            Remove
                          </button>
                        </form>`
                      : ''
                  }
                  ${
                    owns && !self
                      ? html`<form
                          method="post"
                          action="/dashboard/members/${m.userId}/transfer"
                          class="inline"
                          data-confirm="Make ${m.email} the owner? You become an admin."
                        >
                          <button
                            type="submit"
                            class="secondary"
                            aria-label="Transfer ownership to ${m.email}"
                          >
                            Make owner
                          </button>
                        </form>`
                      : ''
                  }
                </td>
              </tr>`;
            })}
          </tbody>
        </table>
        ${
          manages
            ? html`<h2>Pending invites</h2>
                ${
                  invites.length === 0
                    ? html`<div class="empty">No pending invites.</div>`
                    : html`<table>
                        <thead>
                          <tr>
                            <th scope="col">Email</th>
                            <th scope="col">Role</th>
                            <th scope="col">Expires</th>
                            <th scope="col"><span class="visually-hidden">Actions</span></th>
                          </tr>
                        </thead>
                        <tbody>
                          ${invites.map(
                            (i) =>
                              html`<tr>
                                <td>${i.email}</td>
                                <td>${i.role}</td>
                                <td>${when(i.expiresAt)} ${badge(i.status)}</td>
                                <td>
                                  <form
                                    method="post"
                                    action="/dashboard/invites/${i.id}/revoke"
                                    class="inline"
                                    data-confirm="Revoke the invite to ${i.email}?"
                                  >
                                    <button
                                      type="submit"
                                      class="secondary"
                                      aria-label="Revoke the invite to ${i.email}"
                                    >
                                      Revoke
                                    </button>
                                  </form>
                                </td>
                              </tr>`,
                          )}
                        </tbody>
                      </table>`
                }
                <form
                  method="post"
                  action="/dashboard/invites"
                  class="card row"
                  aria-labelledby="invite-h"
                >
                  <h2 id="invite-h" class="visually-hidden">Invite someone</h2>
                  <div>
                    <label for="invite-email">Email</label
                    ><input
                      id="invite-email"
                      name="email"
                      type="email"
                      required
                      placeholder="ann@example.com"
                    />
                  </div>
                  <div>
                    <label for="invite-role">Role</label
                    ><select id="invite-role" name="role">
                      ${grantable.map((r) => html`<option value="${r}" ${r === 'deployer' ? 'selected' : ''}>${r}</option>`)}
                    </select>
                  </div>
                  <div><button type="submit">Send invite</button></div>
                </form>
                <p class="hint">The emailed link works once and expires after 7 days.</p>`
            : ''
        }
        <form
          method="post"
          action="/dashboard/members/leave"
          data-confirm="Leave this organization? You lose access to it."
        >
          <button type="submit" class="secondary">Leave this organization</button>
        </form>`;
      return render(c, s, { title: 'Members', section: 'members' }, body);
    }),
  );

  app.post(
    '/dashboard/members/:userId/role',
    action(fetchApi, '/dashboard/members', async (c, s, form) => {
      const m = await s.api.call<Member>('PATCH', `/api/members/${param(c, 'userId')}`, {
        role: field(form, 'role') ?? '',
      });
      flash(c, 'notice', `${m.email} is now ${m.role}.`);
      return '/dashboard/members';
    }),
  );
  app.post(
    '/dashboard/members/:userId/remove',
    action(fetchApi, '/dashboard/members', async (c, s) => {
      await s.api.call('DELETE', `/api/members/${param(c, 'userId')}`);
      flash(c, 'notice', 'Member removed.');
      return '/dashboard/members';
    }),
  );
  app.post(
    '/dashboard/members/:userId/transfer',
    action(fetchApi, '/dashboard/members', async (c, s) => {
      await s.api.post(`/api/members/${param(c, 'userId')}/transfer-ownership`);
      flash(c, 'notice', 'Ownership transferred; you are an admin now.');
      return '/dashboard/members';
    }),
  );
  app.post(
    '/dashboard/members/leave',
    action(fetchApi, '/dashboard/members', async (c, s) => {
      if (!s.userId) throw new ApiFailure(400, 'invalid_input', 'only a person can leave');
      await s.api.call('DELETE', `/api/members/${s.userId}`);
      flash(c, 'notice', 'You left the organization.');
      return '/dashboard';
    }),
  );
  app.post(
    '/dashboard/invites',
    action(fetchApi, '/dashboard/members', async (c, s, form) => {
      const i = await s.api.post<Invite>('/api/invites', {
        email: field(form, 'email') ?? '',
        role: field(form, 'role') ?? '',
      });
      flash(c, 'notice', `Invite sent to ${i.email} as ${i.role}.`);
      return '/dashboard/members';
    }),
  );
  app.post(
    '/dashboard/invites/:inviteId/revoke',
    action(fetchApi, '/dashboard/members', async (c, s) => {
      await s.api.call('DELETE', `/api/invites/${param(c, 'inviteId')}`);
      flash(c, 'notice', 'Invite revoked: its link no longer works.');
      return '/dashboard/members';
    }),
  );
}
