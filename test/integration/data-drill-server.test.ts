/**
 * The MariaDB drill server, for real: a data service holding every kind of value (NULLs,
 * binary with every byte, 4-byte unicode, decimals, times at microseconds, JSON, geometry)
 * and the objects a dump carries besides rows (a trigger, a procedure, a function, a view,
 * an event) is backed up by the worker and its drill passes; its dump, downloaded, is then
 * restored by the drill container itself (planDrill, serving on a drill network) both as a
 * format-1 backup hands it over (plain SQL, `sh`) and as format 2 does (gzip, gunzipped
 * beside the server): every table's content, hashed row by row, and the routines' answers
 * are the source's. The drill server is bootstrapped with the system tables only and no
 * durability: this proves it still restores everything a dump holds, exactly.
 */
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BackupView } from '../../core/data-services/backup-use-cases.ts';
import { parseCounts, planDrill } from '../../core/data-services/backups.ts';
import { drillNetworkName } from '../../core/data-services/drill-app.ts';
import { aDataService } from '../contracts/store/builders.ts';
import { containerEnv, sleep, useDataSuite } from '../support/data-services.ts';
import { dockerTarget } from '../support/docker.ts';
import { available } from '../support/services.ts';

const ready = await available('docker');
const image = 'selfdevop/mariadb:10.11';

/** The source: every column type a restore must carry over, and the objects beside the rows. */
const schema = [
  String.raw`create table kinds (
    id int primary key auto_increment,
    i bigint unsigned, d decimal(30,10), f double, r float, bits bit(8),
    day date, at datetime(6), ts timestamp(6) null default null, t time(3), y year,
    c char(4), v varchar(200), tx text, bin varbinary(300), bl longblob,
    e enum('a','b','c'), st set('x','y','z'), j json, g point
  ) default charset=utf8mb4`,
  // The trigger fills audit as rows arrive (a restore must not fire it again: 5003 rows).
  'create table audit (kind_id int, note varchar(20))',
  "create trigger kinds_ai after insert on kinds for each row insert into audit values (new.id, 'inserted')",
  // Every byte from 0 to 255 in the binary columns; NULL in every nullable column once;
  // quotes, backslashes, tabs, newlines and a NUL in the text ones.
  String.raw`insert into kinds (i, d, f, r, bits, day, at, ts, t, y, c, v, tx, bin, bl, e, st, j, g) values
    (18446744073709551615, -12345678901234567890.0123456789, 1.0e308, 3.5, b'10100101',
     '1000-01-01', '2026-12-04 20:15:01.123456', '2038-01-19 03:14:07.999999', '-838:59:59.999', 2155,
     'ab\0', 'grüße 漢字 🙂 \' " \\ tab\tnl\n', repeat('🙂', 1000),
     (select unhex(group_concat(lpad(hex(seq), 2, '0') order by seq separator '')) from seq_0_to_255),
     (select unhex(group_concat(lpad(hex(seq % 256), 2, '0') order by seq separator '')) from seq_0_to_70000),
     'c', 'x,z', '{"k": [1, null, "v"]}', point(1.5, -2.25)),
    (null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null),
    (0, 0, -0.0, 0, b'0', '9999-12-31', '1970-01-01 00:00:00', '1970-01-01 00:00:01', '00:00:00', 1901,
     '', '', '', '', '', 'a', '', 'null', point(0, 0))`,
  "insert into kinds (v, bin) select concat('row-', seq), unhex(md5(seq)) from seq_1_to_5000",
  'create procedure total(out n int) select count(*) into n from kinds',
  'create function twice(x int) returns int deterministic return x * 2',
  "create view named as select id, v from kinds where v like 'row-%'",
  "create event nightly on schedule every 1 day do delete from audit where note = 'old'",
  // What the manifest's row counter (it reads the dump itself) must not be fooled by: a
  // backtick and a comma in a name, values that read like a row's end or a new INSERT, a
  // table with no rows, a system-versioned table (its current rows count), and a routine
  // whose body holds INSERT lines.
  'create table `odd``name, here` (id int primary key, s text)',
  String.raw`insert into ${'`odd``name, here`'} values
    (1, 'a),\n(2,\'x\'),\nINSERT INTO ${'`kinds`'} VALUES\n(3);'), (2, '),(\\'),
    (3, 'DELIMITER ;;\nDELIMITER ;\n'), (4, '\r\n);')`,
  'create table nothing (id int)',
  'create table versioned (id int primary key, v int) with system versioning',
  'insert into versioned values (1, 1), (2, 2)',
  'update versioned set v = 3 where id = 1',
  'delete from versioned where id = 2',
  "create procedure refill() insert into audit values\n(1, 'a'),\n(2, 'b')",
];

/** The rows per table the source holds (the backup's manifest and every drill must say so). */
const tables = { kinds: 5003, audit: 5003, 'odd`name, here': 4, nothing: 0, versioned: 1 };

/** `x` for a hash: NULL apart from any value (concat_ws would skip it), binary as hex. */
const cell = (x: string) => `ifnull(${x}, '~null~')`;
const kindsRow = [
  'id',
  'i',
  'd',
  'f',
  'r',
  'hex(bits)',
  'day',
  'at',
  'ts',
  't',
  'y',
  'hex(c)',
  'hex(v)',
  'hex(tx)',
  'hex(bin)',
  'md5(bl)',
  'e',
  'st',
  'j',
  'st_astext(g)',
].map(cell);

/** One hash per table over every row in key order, and what the routines and objects answer. */
const fingerprint = [
  'set session group_concat_max_len = 64 * 1024 * 1024',
  `select 'kinds', count(*), md5(group_concat(md5(concat_ws('|', ${kindsRow.join(', ')})) order by id separator '')) from kinds`,
  "select 'audit', count(*), md5(group_concat(concat_ws('|', kind_id, note) order by kind_id separator '#')) from audit",
  "select 'named', count(*), md5(group_concat(v order by id)) from named",
  "select 'odd', count(*), md5(group_concat(hex(s) order by id)) from `odd``name, here`",
  "select 'versioned', count(*), sum(v) from versioned",
  'call total(@n)',
  "select 'routines', @n, twice(21)",
  "select 'objects', (select count(*) from information_schema.triggers where trigger_schema = 'app'), (select count(*) from information_schema.events where event_schema = 'app')",
].join(';\n');

describe.skipIf(!ready)('the MariaDB drill server restores a dump exactly', () => {
  const s = useDataSuite(import.meta.url, { email: 'drill-server@example.com' });
  let db: Awaited<ReturnType<typeof s.create>>;
  let password: string;
  let source: string;
  let dump: Buffer;
  let backup: BackupView;

  const query = async (host: string, network: string, pw: string, sql: string) => {
    // The SQL through the environment: no shell quoting between it and the client.
    const r = await s.client(
      image,
      network,
      { MYSQL_PWD: pw, SQL: sql },
      `mariadb --default-character-set=utf8mb4 -h ${host} -u app app -N -B -e "$SQL"`,
    );
    expect(r.exitCode, r.output).toBe(0);
    return r.output;
  };

  beforeAll(async () => {
    db = await s.create({ name: 'kinds', engine: 'mariadb' });
    expect(db.status, db.error ?? '').toBe('ready');
    password = await containerEnv(db.host, 'MARIADB_PASSWORD');
    for (const sql of schema) await query(db.host, db.network, password, sql);
    source = await query(db.host, db.network, password, fingerprint);
  }, 600_000);

  /** A backup asked for, once it failed or its drill ended. */
  const backUp = async (): Promise<BackupView> => {
    const res = await s.request('POST', `/api/data-services/${db.id}/backups`, s.h());
    expect(res.status, res.text).toBe(202);
    let b!: BackupView;
    for (let i = 0; i < 400; i++) {
      const r = await s.request('GET', `/api/data-services/${db.id}/backups`, s.h());
      b = r.body.items.find((x: { id: string }) => x.id === res.body.id);
      if (b.status === 'failed' || (b.drillStatus && b.drillStatus !== 'running')) break;
      await sleep(500);
    }
    return b;
  };

  it('backs the data service up and its drill passes, the objects beside the rows included', async () => {
    backup = await backUp();
    expect(backup.error).toBeNull();
    expect(backup.drillStatus, backup.drillError ?? '').toBe('passed');
    expect(backup.tables).toEqual(tables);
    const got = await fetch(
      `${s.api.url}/api/data-services/${db.id}/backups/${backup.id}/download`,
      { headers: { authorization: `Bearer ${s.token}`, 'x-org-id': s.orgId } },
    );
    expect(got.status).toBe(200);
    dump = Buffer.from(await got.arrayBuffer());
    expect(dump.byteLength).toBe(backup.rawBytes);
    expect(dump.toString('latin1')).toMatch(/CREATE DEFINER=.* PROCEDURE `total`/);
  }, 600_000);

  for (const gzipped of [false, true])
    it(`restores it exactly in the drill container, ${gzipped ? 'gzipped (format 2)' : 'as plain SQL (format 1)'}`, async () => {
      expect(dump, 'the backup test ran first').toBeDefined();
      const drillId = `${backup.id}-${gzipped ? 'gz' : 'sql'}`;
      const ds = aDataService(s.orgId, s.projectId, 'nod_drill', {
        id: db.id,
        name: db.name,
        engine: 'mariadb',
        version: '10.11',
      });
      const network = drillNetworkName(drillId);
      const plan = planDrill(ds, 'drillpw1', drillId, network, { gzipped });
      const spec = { ...plan, labels: { ...plan.labels, ...s.run.labels } };
      const bytes = gzipped ? gzipSync(dump) : dump;
      const run = await s.runtime.runPiped!(dockerTarget, spec, {
        timeoutMs: 300_000,
        stdin: (async function* () {
          yield new Uint8Array(bytes);
        })(),
      });
      try {
        // It keeps serving after `drill<TAB>ready` (the linked apps' drill): read up to it.
        let out = '';
        const decoder = new TextDecoder();
        for await (const chunk of run.stdout) {
          out += decoder.decode(chunk, { stream: true });
          if (out.includes('drill\tready\n')) break;
        }
        if (!out.includes('drill\tready')) expect.fail(`${out}\n${(await run.result).output}`);
        const counts = parseCounts(out);
        expect(counts.tables).toEqual(tables);
        if (gzipped) expect(counts.rawBytes).toBe(dump.byteLength);
        // The drill server's copy, read over the drill network: the source's, row for row.
        expect(await query(spec.name, network, 'drillpw1', fingerprint)).toBe(source);
      } finally {
        await s.runtime.remove(dockerTarget, spec.name).catch(() => undefined);
        await s.runtime.removeNetwork!(dockerTarget, network).catch(() => undefined);
      }
    }, 600_000);

  it('counts what the dump holds of a database written to during its backup, so its drill passes', async () => {
    await query(db.host, db.network, password, 'create table feed (id int primary key)');
    // One session inserting a row every few ms for ~10 s, beside the backup: counts taken
    // before the dump's snapshot would miss the rows written between them.
    const writer = s.client(
      image,
      db.network,
      { MYSQL_PWD: password },
      `for i in $(seq 1 2000); do echo "insert into feed values ($i); do sleep(0.005);"; done | mariadb -h ${db.host} -u app app`,
    );
    const fed = async () =>
      Number(await query(db.host, db.network, password, 'select count(*) from feed'));
    for (let i = 0; i < 100 && (await fed()) === 0; i++) await sleep(100);
    const b = await backUp();
    expect((await writer).exitCode).toBe(0);
    expect(b.error).toBeNull();
    expect(b.drillStatus, b.drillError ?? '').toBe('passed');
    expect(b.tables?.feed).toBeGreaterThan(0);
    // The writer went on after the dump's snapshot: its count is the dump's, not the table's now.
    expect(b.tables?.feed).toBeLessThan(await fed());
  }, 600_000);
});
