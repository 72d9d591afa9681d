import * as s from '../../../core/schemas.ts';
import { login, logout, signup } from '../../../core/auth/use-cases.ts';
import { route } from '../route.ts';

export const authRoutes = [
  route({
    method: 'post',
    path: '/api/auth/local/signup',
    summary:
      'Create a user (local mode): owner of a new org, or with inviteToken a member of the org that invited them (works while signup is closed)',
    tag: 'auth',
    auth: false,
    permission: 'anyone',
    body: s.signupInput,
    status: 201,
    handle: ({ deps, body, ctx }) => signup(deps, body, ctx),
  }),
  route({
    method: 'post',
    path: '/api/auth/local/login',
    summary: 'Exchange email and password for a session token (local mode)',
    tag: 'auth',
    auth: false,
    permission: 'anyone',
    body: s.loginInput,
    status: 200,
    handle: ({ deps, body, ctx }) => login(deps, body, ctx),
  }),
  route({
    method: 'post',
    path: '/api/auth/logout',
    summary: 'End the calling session: its token is refused from then on',
    tag: 'auth',
    auth: true,
    permission: 'signed-in',
    status: 204,
    handle: ({ deps, principal }) => logout(deps, principal),
  }),
  route({
    method: 'get',
    path: '/api/me',
    summary: 'The caller: user or API key, current org and role',
    tag: 'auth',
    auth: true,
    permission: 'signed-in',
    status: 200,
    handle: async ({ principal }) => {
      const { sessionId: _id, sessionExpiresAt: _expires, ...me } = principal;
      return me;
    },
  }),
];
