import type { Hono } from 'hono';
import { html } from 'hono/html';
import { ApiFailure, type ApiFetch } from '../api.ts';
import { chartsSection, nodeCharts, type MetricsAnswer } from '../charts.ts';
import { action, view } from '../handler.ts';
import { badge, when } from '../layout.ts';
import { field, flash, render, param } from '../session.ts';
import type { NodeCluster } from '../../../../core/nodes/cluster.ts';
import type { NodeRecord } from '../types.ts';

const labelLines = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');

export function registerNodes(app: Hono, fetchApi: ApiFetch): void {
  app.get(
    '/dashboard/nodes',
    view(fetchApi, async (c, s) => {
      const nodes = await s.api.all<NodeRecord>('/api/nodes');
      const body = html`<h1>Nodes</h1>
        <p>
          Nodes are the Docker hosts releases run on. A service's replicas spread over the nodes
          that are not draining and carry its placement labels, within each engine's CPUs and
          memory. A Swarm cluster, registered by one of its managers, takes a service's replicas as
          Swarm services on its members instead.
        </p>
        ${
          nodes.length === 0
            ? html`<div class="empty">
                <strong>No nodes yet.</strong> Register a remote Docker Engine over TLS
                (<code>tcp://host:2376</code>) or SSH (<code>ssh://user@host</code>) at its public
                address. This machine's own engine (<code>unix:///var/run/docker.sock</code>,
                address <code>127.0.0.1</code>) is the installation operator's to register.
              </div>`
            : html`<table>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Kind</th>
                    <th scope="col">State</th>
                    <th scope="col">Engine</th>
                    <th scope="col">Docker host</th>
                    <th scope="col">Address</th>
                    <th scope="col">Credentials</th>
                    <th scope="col">Labels</th>
                    <th scope="col">Registered</th>
                  </tr>
                </thead>
                <tbody>
                  ${nodes.map(
                    (n) =>
                      html`<tr>
                        <td><a href="/dashboard/nodes/${n.id}">${n.name}</a></td>
                        <td>${n.kind === 'swarm' ? 'Swarm cluster' : 'engine'}</td>
                        <td>${badge(n.drainMode ? 'draining' : 'active')}</td>
                        <td>
                          ${badge(n.reachability)}${
                            n.reachabilitySince ? html` since ${when(n.reachabilitySince)}` : ''
                          }
                        </td>
                        <td><code>${n.dockerHost}</code></td>
                        <td>
                          ${n.address}${n.operatorRegistered ? html` ${badge('operator')}` : ''}
                        </td>
                        <td>${credentialsOf(n)}</td>
                        <td>
                          ${Object.entries(n.labels).map(([k, v]) => html`<code>${k}=${v}</code> `)}
                        </td>
                        <td>${when(n.createdAt)}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
        <form method="post" action="/dashboard/nodes" class="card" aria-labelledby="new-node">
          <h2 id="new-node">Register a node</h2>
          <div class="row">
            <div>
              <label for="node-name">Name</label
              ><input
                id="node-name"
                name="name"
                required
                pattern="[a-z0-9]([a-z0-9\\-]*[a-z0-9])?"
                placeholder="local"
              />
            </div>
            <div>
              <label for="node-docker">Docker host</label
              ><input
                id="node-docker"
                name="dockerHost"
                required
                value="unix:///var/run/docker.sock"
              />
            </div>
            <div>
              <label for="node-address"
                >Address
                <span class="hint"
                  >the node's IP, where the edge reaches its containers; loopback is the
                  operator's</span
                ></label
              ><input id="node-address" name="address" required value="127.0.0.1" />
            </div>
            <div>
              <label for="node-kind"
                >Kind
                <span class="hint"
                  >a Swarm cluster is registered by one of its managers</span
                ></label
              ><select id="node-kind" name="kind">
                <option value="engine" selected>Docker Engine</option>
                <option value="swarm">Swarm cluster (manager)</option>
              </select>
            </div>
          </div>
          ${credentialFields('node', 'both')}
          <p><button type="submit">Register node</button></p>
        </form>`;
      return render(c, s, { title: 'Nodes', section: 'nodes' }, body);
    }),
  );

  app.post(
    '/dashboard/nodes',
    action(fetchApi, '/dashboard/nodes', async (c, s, form) => {
      const name = field(form, 'name') ?? '';
      await s.api.post('/api/nodes', {
        name,
        ...(field(form, 'kind') === 'swarm' ? { kind: 'swarm' } : {}),
        dockerHost: field(form, 'dockerHost') ?? '',
        address: field(form, 'address') ?? '',
        ...credentialsFrom(form),
      });
      flash(
        c,
        'notice',
        `Node ${name} registered. Next: create a project and a service, then deploy.`,
      );
      return '/dashboard/nodes';
    }),
  );

  app.get(
    '/dashboard/nodes/:id',
    view(fetchApi, async (c, s) => {
      const n = await s.api.get<NodeRecord>(`/api/nodes/${encodeURIComponent(param(c, 'id'))}`);
      const range = ['1h', '1d', '1w'].includes(c.req.query('range') ?? '')
        ? c.req.query('range')!
        : '1h';
      const metrics = await s.api
        .get<MetricsAnswer>(`/api/nodes/${n.id}/metrics?range=${range}`)
        .catch((e: unknown) => {
          if (e instanceof ApiFailure && e.code === 'route_not_found') return null;
          throw e;
        });
      const cluster =
        n.kind === 'swarm' ? await s.api.get<NodeCluster>(`/api/nodes/${n.id}/cluster`) : null;
      const kind = n.dockerHost.startsWith('ssh://')
        ? 'ssh'
        : n.dockerHost.startsWith('tcp://')
          ? 'tls'
          : null;
      const body = html`<p><a href="/dashboard/nodes">← Nodes</a></p>
        <h1>Node ${n.name}</h1>
        <dl class="facts">
          <dt>Kind</dt>
          <dd>
            ${n.kind === 'swarm' ? 'Swarm cluster, reached through this manager' : 'Docker Engine'}
          </dd>
          <dt>State</dt>
          <dd>${badge(n.drainMode ? 'draining' : 'active')}</dd>
          <dt>Engine</dt>
          <dd>
            ${badge(n.reachability)}${
              n.reachabilitySince ? html` since ${when(n.reachabilitySince)}` : ''
            }${
              n.reachability === 'lost'
                ? html` — its replicas left the edge and were replaced on other nodes (see the node
                  events in the audit log); containers it still holds are removed when it answers
                  again`
                : ''
            }
          </dd>
          <dt>Last answered</dt>
          <dd>${n.lastSeenAt ? when(n.lastSeenAt) : 'not yet checked'}</dd>
          <dt>Docker host</dt>
          <dd><code>${n.dockerHost}</code></dd>
          <dt>Address</dt>
          <dd>${n.address}</dd>
          <dt>Registered by</dt>
          <dd>
            ${
              n.operatorRegistered
                ? "the installation's operator, who vouched for a local engine or address"
                : 'a tenant: public addresses only'
            }
          </dd>
          <dt>Credentials</dt>
          <dd>
            ${credentialsOf(n)}${n.credentialsUpdatedAt ? html`, set ${when(n.credentialsUpdatedAt)}` : ''}
          </dd>
          <dt>Labels</dt>
          <dd>
            ${Object.entries(n.labels).map(([k, v]) => html`<code>${k}=${v}</code> `)}${Object.keys(n.labels).length === 0 ? 'none' : ''}
          </dd>
        </dl>
        <form
          method="post"
          action="/dashboard/nodes/${n.id}/settings"
          class="card"
          aria-labelledby="node-settings"
        >
          <h2 id="node-settings">Name, labels and address</h2>
          <p class="hint">
            The name and labels apply at once; a new address is judged as at registration and used
            by releases started from now on.
          </p>
          <div class="row">
            <div>
              <label for="node-name">Node name</label
              ><input id="node-name" name="name" required value="${n.name}" />
            </div>
            <div>
              <label for="node-address">Address</label
              ><input id="node-address" name="address" required value="${n.address}" />
            </div>
          </div>
          <label for="node-labels">Labels <span class="hint">one key=value per line</span></label>
          <textarea id="node-labels" name="labels">${labelLines(n.labels ?? {})}</textarea>
          <p><button type="submit" class="secondary">Save</button></p>
        </form>
        <form
          method="post"
          action="/dashboard/nodes/${n.id}/${n.drainMode ? 'undrain' : 'drain'}"
          class="card"
          aria-labelledby="drain"
        >
          <h2 id="drain">${n.drainMode ? 'Take out of drain' : 'Drain'}</h2>
          <p class="hint">
            ${
              n.drainMode
                ? 'The node takes new replicas again; nothing moves back by itself.'
                : 'Its replicas start on other nodes, pass their health checks and take the traffic, then stop here. It takes no new replicas until undrained.'
            }
          </p>
          <p><button type="submit">${n.drainMode ? 'Undrain' : 'Drain node'}</button></p>
        </form>
        <form
          method="post"
          action="/dashboard/nodes/${n.id}/delete"
          class="card"
          aria-labelledby="delete-node"
          data-confirm="Delete node ${n.name}? selfdevop forgets it; its containers are not touched."
        >
          <h2 id="delete-node">Delete</h2>
          <p class="hint">
            ${
              n.reachability === 'lost'
                ? 'The node is lost. Deleting it writes off the replicas it still holds; each of its services must serve on another node, where they are restored.'
                : 'Only a node that holds no replica goes: drain it first. Its containers are not touched; a data service on it must be deleted first.'
            }
          </p>
          ${
            n.reachability === 'lost' ? html`<input type="hidden" name="force" value="true" />` : ''
          }
          <p><button type="submit" class="danger">Delete node</button></p>
        </form>
        ${cluster ? clusterSection(cluster) : ''}
        ${chartsSection(metrics, nodeCharts, (r) => `/dashboard/nodes/${n.id}?range=${r}`)}
        ${
          kind
            ? html`<form
                method="post"
                action="/dashboard/nodes/${n.id}/credentials"
                class="card"
                aria-labelledby="rotate"
              >
                <h2 id="rotate">Replace the credentials</h2>
                <p class="hint">
                  Deploys use the new ones from the next engine call. The old ones are discarded;
                  they are never shown.
                </p>
                ${credentialFields('rotate', kind, true)}
                <p><button type="submit">Replace credentials</button></p>
              </form>`
            : html`<p class="hint">A local socket needs no credentials.</p>`
        }`;
      return render(c, s, { title: `Node ${n.name}`, section: 'nodes' }, body);
    }),
  );

  for (const verb of ['drain', 'undrain'] as const) {
    app.post(
      `/dashboard/nodes/:id/${verb}`,
      action(fetchApi, '/dashboard/nodes', async (c, s) => {
        const id = param(c, 'id');
        const r = await s.api.post<{ moving?: unknown[] }>(
          `/api/nodes/${encodeURIComponent(id)}/${verb}`,
          {},
        );
        flash(
          c,
          'notice',
          verb === 'drain'
            ? `Draining: ${r.moving?.length ?? 0} release(s) moving to other nodes.`
            : 'The node takes new replicas again.',
        );
        return `/dashboard/nodes/${id}`;
      }),
    );
  }

  for (const verb of ['drain', 'undrain'] as const) {
    app.post(
      `/dashboard/nodes/:id/members/:member/${verb}`,
      action(fetchApi, '/dashboard/nodes', async (c, s) => {
        const id = param(c, 'id');
        const r = await s.api.post<{
          member: { hostname: string };
          leaving?: { replicas: number[] }[];
          kept?: { replicas: number[] }[];
        }>(
          `/api/nodes/${encodeURIComponent(id)}/cluster/members/${encodeURIComponent(param(c, 'member'))}/${verb}`,
          {},
        );
        const count = (l?: { replicas: number[] }[]) =>
          (l ?? []).reduce((n, x) => n + x.replicas.length, 0);
        flash(
          c,
          'notice',
          verb === 'drain'
            ? `Draining member ${r.member.hostname}: ${count(r.leaving)} replica(s) left the edge; Swarm runs them on other members, each joins once it answers.${count(r.kept) ? ` ${count(r.kept)} replica(s) were their release's only ones serving and stay until their replacement answers.` : ''}`
            : `Member ${r.member.hostname} takes tasks again.`,
        );
        return `/dashboard/nodes/${id}#cluster`;
      }),
    );
  }

  app.post(
    '/dashboard/nodes/:id/delete',
    action(fetchApi, '/dashboard/nodes', async (c, s, form) => {
      const id = param(c, 'id');
      const force = field(form, 'force') === 'true' ? '?force=true' : '';
      await s.api.call('DELETE', `/api/nodes/${encodeURIComponent(id)}${force}`);
      flash(c, 'notice', 'Node deleted.');
      return '/dashboard/nodes';
    }),
  );

  app.post(
    '/dashboard/nodes/:id/settings',
    action(fetchApi, '/dashboard/nodes', async (c, s, form) => {
      const id = param(c, 'id');
      const n = await s.api.get<NodeRecord>(`/api/nodes/${encodeURIComponent(id)}`);
      const labels: Record<string, string> = {};
      for (const line of String(form.labels ?? '').split(/\r?\n/)) {
        if (line.trim() === '') continue;
        const at = line.indexOf('=');
        labels[(at < 0 ? line : line.slice(0, at)).trim()] =
          at < 0 ? '' : line.slice(at + 1).trim();
      }
      const next: Record<string, unknown> = {
        name: field(form, 'name') ?? '',
        address: field(form, 'address') ?? '',
        labels,
      };
      const current = n as unknown as Record<string, unknown>;
      const body = Object.fromEntries(
        Object.entries(next).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(current[k])),
      );
      if (Object.keys(body).length === 0) {
        flash(c, 'notice', 'Nothing changed.');
        return `/dashboard/nodes/${id}`;
      }
      await s.api.call('PATCH', `/api/nodes/${encodeURIComponent(id)}`, body);
      flash(c, 'notice', 'Node saved.');
      return `/dashboard/nodes/${id}`;
    }),
  );

  app.post(
    '/dashboard/nodes/:id/credentials',
    action(fetchApi, '/dashboard/nodes', async (c, s, form) => {
      const id = param(c, 'id');
      await s.api.call('PATCH', `/api/nodes/${encodeURIComponent(id)}`, credentialsFrom(form));
      flash(c, 'notice', 'Credentials replaced. The next deploy to this node uses them.');
      return `/dashboard/nodes/${id}`;
    }),
  );
}

/** A Swarm node's members, as its manager reports them now. */
function clusterSection(cluster: NodeCluster) {
  return html`<section class="card" aria-labelledby="cluster">
    <h2 id="cluster">Swarm members</h2>
    ${
      !cluster.available
        ? html`<p class="empty">${cluster.reason}</p>`
        : html`<p class="hint">
              Read live from the manager. A service's placement labels are Swarm constraints on
              these members' labels. Draining a member is Swarm's drain: its tasks leave the edge
              first, then Swarm runs them on other members, each joining once it answers.
            </p>
            <table>
              <thead>
                <tr>
                  <th scope="col">Hostname</th>
                  <th scope="col">Address</th>
                  <th scope="col">Role</th>
                  <th scope="col">Availability</th>
                  <th scope="col">State</th>
                  <th scope="col">Labels</th>
                  <th scope="col">Drain</th>
                </tr>
              </thead>
              <tbody>
                ${cluster.members.map(
                  (m) =>
                    html`<tr>
                      <td>${m.hostname}</td>
                      <td>${m.address}</td>
                      <td>${m.role}${m.leader ? html` ${badge('leader')}` : ''}</td>
                      <td>${badge(m.availability)}</td>
                      <td>${badge(m.state)}</td>
                      <td>
                        ${Object.entries(m.labels).map(([k, v]) => html`<code>${k}=${v}</code> `)}
                      </td>
                      <td>
                        <form
                          method="post"
                          action="/dashboard/nodes/${cluster.nodeId}/members/${m.id}/${m.availability === 'active' ? 'drain' : 'undrain'}"
                          data-confirm="${
                            m.availability === 'active'
                              ? `Drain ${m.hostname}? Its tasks leave the edge, then Swarm runs them on other members.`
                              : `Undrain ${m.hostname}? It takes new tasks again.`
                          }"
                        >
                          <button type="submit" class="secondary">
                            ${m.availability === 'active' ? `Drain ${m.hostname}` : `Undrain ${m.hostname}`}
                          </button>
                        </form>
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`
    }
  </section>`;
}

/**
 * The TLS and SSH parts of a node form. `prefix` keeps ids unique per form; `open` unfolds
 * the section (on a page about one node there is nothing else to fill in).
 */
function credentialFields(prefix: string, kind: 'tls' | 'ssh' | 'both', open = false) {
  const tls = html`<details ${open ? 'open' : ''}>
    <summary>
      TLS client certificate <span class="hint">for <code>tcp://host:2376</code></span>
    </summary>
    <p class="hint">
      PEM text of the CA that signed the engine's certificate, and of the client certificate and key
      the engine trusts. Stored encrypted; never shown again.
    </p>
    <label for="${prefix}-tls-ca">CA certificate</label
    ><textarea id="${prefix}-tls-ca" name="tlsCa" rows="3" spellcheck="false"></textarea>
    <label for="${prefix}-tls-cert">Client certificate</label
    ><textarea id="${prefix}-tls-cert" name="tlsCert" rows="3" spellcheck="false"></textarea>
    <label for="${prefix}-tls-key">Client key</label
    ><textarea id="${prefix}-tls-key" name="tlsKey" rows="3" spellcheck="false"></textarea>
  </details>`;
  const ssh = html`<details ${open ? 'open' : ''}>
    <summary>
      SSH key <span class="hint">for <code>ssh://user@host</code></span>
    </summary>
    <label for="${prefix}-ssh-key"
      >Private key <span class="hint">OpenSSH or PEM, without a passphrase</span></label
    ><textarea id="${prefix}-ssh-key" name="sshPrivateKey" rows="3" spellcheck="false"></textarea>
    <label for="${prefix}-ssh-host-key"
      >Host key
      <span class="hint"
        >the server's public key line, e.g. from <code>ssh-keyscan</code></span
      ></label
    ><input id="${prefix}-ssh-host-key" name="sshHostKey" spellcheck="false" />
    <label class="inline"
      ><input type="checkbox" name="sshInsecureIgnoreHostKey" value="yes" /> No host key: trust
      whichever server answers (insecure)</label
    >
  </details>`;
  return kind === 'tls' ? tls : kind === 'ssh' ? ssh : html`${tls}${ssh}`;
}

/** Which credentials a node has, in words; the material itself never leaves the API. */
function credentialsOf(n: NodeRecord): string {
  if (n.tls.configured) return 'TLS client certificate';
  if (n.ssh.configured) return 'SSH key';
  return n.dockerHost.startsWith('unix://') ? 'local socket' : 'none';
}

/** The optional TLS or SSH fields of the node form, as `POST /api/nodes` takes them; the API validates them. */
function credentialsFrom(form: Record<string, unknown>): Record<string, unknown> {
  const tls = {
    ca: field(form, 'tlsCa'),
    cert: field(form, 'tlsCert'),
    key: field(form, 'tlsKey'),
  };
  const privateKey = field(form, 'sshPrivateKey');
  const hostKey = field(form, 'sshHostKey');
  return {
    // A partly filled TLS section is sent as is, so the API names the missing part.
    ...(tls.ca || tls.cert || tls.key
      ? { tls: { ca: tls.ca ?? '', cert: tls.cert ?? '', key: tls.key ?? '' } }
      : {}),
    ...(privateKey || hostKey
      ? {
          ssh: {
            privateKey: privateKey ?? '',
            ...(hostKey ? { hostKey } : {}),
            ...(field(form, 'sshInsecureIgnoreHostKey') === 'yes'
              ? { insecureIgnoreHostKey: true }
              : {}),
          },
        }
      : {}),
  };
}
