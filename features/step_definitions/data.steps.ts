/**
 * Data services in the installed stack: created, written to and checksummed through the
 * host's Docker Engine (the node the stack deploys to), backed up and restored through the
 * public API by the stack's worker, into its backups volume.
 */
import assert from 'node:assert/strict';
import { Given, Then, When } from '@cucumber/cucumber';
import { mustRun, run, sleep } from '../support/stack.ts';
import { suite, type AcceptanceWorld } from '../support/world.ts';
import { projectId } from './deploy.steps.ts';

interface DataServiceView {
  id: string;
  name: string;
  status: string;
  error: string | null;
  host: string;
  volume: string;
  network: string;
}

interface BackupView {
  id: string;
  status: string;
  error: string | null;
  drillStatus: string | null;
  drillError: string | null;
  tables: Record<string, number> | null;
}

const dataServices = new Map<string, DataServiceView>();

function known(name: string): DataServiceView {
  const d = dataServices.get(name);
  if (!d) throw new Error(`no data service "${name}" was created in this run`);
  return d;
}

/** Polls `GET path` until `done` holds (bounded by deadlineMs), returning that body. */
async function poll<T>(
  world: AcceptanceWorld,
  path: string,
  done: (body: T) => boolean,
  what: string,
  deadlineMs = 180_000,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const r = await world.stack.api('GET', path, { token: world.token ?? undefined });
    assert.equal(r.status, 200, r.text);
    const body = r.json as T;
    if (done(body)) return body;
    if (Date.now() > end) throw new Error(`${what} not reached in ${deadlineMs} ms: ${r.text}`);
    await sleep(500);
  }
}

const settled = (world: AcceptanceWorld, id: string) =>
  poll<DataServiceView>(
    world,
    `/api/data-services/${id}`,
    (d) => d.status !== 'provisioning',
    `data service ${id} leaving provisioning`,
  );

/** SQL through the server's own client, as its `app` user (the password is in its env). */
async function sql(d: DataServiceView, statement: string): Promise<string> {
  const r = await mustRun('docker', [
    'exec',
    d.host,
    'sh',
    '-ec',
    'MYSQL_PWD="$MARIADB_PASSWORD" mariadb -u app app -N -B -e "$1"',
    'sql',
    statement,
  ]);
  return r.stdout.trim();
}

const fingerprint = async (d: DataServiceView) =>
  `${await sql(d, 'select count(*), sum(amount), max(label) from orders')} | ${await sql(d, 'checksum table orders extended')}`
    // CHECKSUM TABLE names the table with its schema; the checksum is what must match.
    .replace(/app\.orders\t/, '');

Given(
  'a MariaDB data service {string} linked to {string}',
  async function (this: AcceptanceWorld, name: string, serviceName: string) {
    const created = await this.stack.api('POST', '/api/data-services', {
      token: this.token ?? undefined,
      body: { projectId: await projectId(this), name: `${name}-${suite.runId}`, engine: 'mariadb' },
    });
    assert.equal(created.status, 202, created.text);
    const id = (created.json as { id: string }).id;
    const body = created.json as { volume: string; network: string };
    suite.dataVolumes.add(body.volume);
    suite.dataNetworks.add(body.network);
    const ready = await settled(this, id);
    assert.equal(ready.status, 'ready', ready.error ?? '');
    dataServices.set(name, ready);
    const service = suite.services.get(serviceName);
    if (!service) throw new Error(`no service "${serviceName}" was created in this run`);
    const link = await this.stack.api('POST', `/api/data-services/${id}/links`, {
      token: this.token ?? undefined,
      body: { serviceId: service.id },
    });
    assert.equal(link.status, 201, link.text);
  },
);

When(
  'I write {int} rows into {string} and note its checksum',
  async function (this: AcceptanceWorld, rows: number, name: string) {
    const d = known(name);
    await sql(
      d,
      `create table orders (id int primary key auto_increment, label varchar(64), amount decimal(10,2)); insert into orders (label, amount) select concat('order-', seq), seq * 1.25 from seq_1_to_${rows}`,
    );
    this.noted[`checksum:${name}`] = await fingerprint(d);
    this.noted[`rows:${name}`] = rows;
  },
);

When('I back up {string}', async function (this: AcceptanceWorld, name: string) {
  const res = await this.stack.api('POST', `/api/data-services/${known(name).id}/backups`, {
    token: this.token ?? undefined,
  });
  assert.equal(res.status, 202, res.text);
  this.values.set(`backup:${name}`, (res.json as { id: string }).id);
});

Then(
  'the backup of {string} completes and its restore drill passes',
  async function (this: AcceptanceWorld, name: string) {
    const backupId = this.values.get(`backup:${name}`)!;
    const list = await poll<{ items: BackupView[] }>(
      this,
      `/api/data-services/${known(name).id}/backups`,
      (body) => {
        const b = body.items.find((x) => x.id === backupId);
        return (
          !!b && (b.status === 'failed' || (b.drillStatus !== null && b.drillStatus !== 'running'))
        );
      },
      `backup ${backupId} and its drill`,
    );
    const b = list.items.find((x) => x.id === backupId)!;
    assert.equal(b.status, 'completed', b.error ?? '');
    assert.equal(b.drillStatus, 'passed', b.drillError ?? '');
    assert.deepEqual(b.tables, { orders: this.noted[`rows:${name}`] });
  },
);

When(
  'the container and the data volume of {string} are destroyed',
  async function (this: AcceptanceWorld, name: string) {
    const d = known(name);
    await mustRun('docker', ['rm', '-f', d.host]);
    await mustRun('docker', ['volume', 'rm', d.volume]);
    const gone = await run('docker', ['volume', 'inspect', d.volume]);
    assert.notEqual(gone.code, 0, `volume ${d.volume} still exists`);
  },
);

When(
  'I restore that backup of {string} into a new data service {string}',
  async function (this: AcceptanceWorld, name: string, newName: string) {
    const res = await this.stack.api('POST', `/api/data-services/${known(name).id}/restore`, {
      token: this.token ?? undefined,
      body: {
        backupId: this.values.get(`backup:${name}`),
        target: 'new',
        name: `${newName}-${suite.runId}`,
      },
    });
    assert.equal(res.status, 202, res.text);
    const id = (res.json as { dataService: { id: string } }).dataService.id;
    // Ready means provisioned; the rows arrive after, and the audit trail says when.
    await poll<{ items: unknown[] }>(
      this,
      `/api/audit-events?action=data_service.restored&targetId=${id}`,
      (body) => body.items.length > 0,
      `data_service.restored for ${id}`,
    );
    const restored = await settled(this, id);
    assert.equal(restored.status, 'ready', restored.error ?? '');
    suite.dataVolumes.add(restored.volume);
    dataServices.set(newName, restored);
  },
);

Then(
  '{string} holds the same rows with the same checksum',
  async function (this: AcceptanceWorld, name: string) {
    const original = this.noted[`checksum:${name.replace(/-restored$/, '')}`];
    assert.ok(original, 'no checksum was noted before the restore');
    assert.equal(await fingerprint(known(name)), original);
  },
);
