// The snapshot browser's bus commands against a real BusServer and a real repository: a client
// of the bus lists a directory (hostile names come back exactly as stored), pages through a big
// one, and compares two snapshots; bad requests get errors that say what to do.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerSnapshotHandlers } from '../../../daemon/service/snapshot-browser.js';
import { LocalArchiver } from '../../../daemon/archiver/local-archiver.js';
import { BusClient } from '../../../shared/bus/bus-client.js';
import type { CommandResult } from '../../../shared/bus/messages.js';
import { startTestBus, type TestBus } from '../../helpers/bus.js';
import { tempDir } from '../../helpers/cli.js';
import { failure } from '../../helpers/errors.js';
import { INVALID_UTF8_NAME, MARKUP_NAME, NEWLINE_NAME, QUOTE_NAME, twoSnapshots, type SnapshotFixture } from '../../helpers/snapshots.js';

describe('snapshot browser over the bus', () => {
  const tmp = tempDir('snapbrowse');
  let bus: TestBus;
  let client: BusClient;
  let fx: SnapshotFixture;

  beforeAll(async () => {
    fx = await twoSnapshots(tmp.dir);
    bus = await startTestBus();
    registerSnapshotHandlers(bus.server, fx.repo);
    client = await BusClient.connect({ endpoint: bus.server.endpoints!.ipc.commands });
  }, 60_000);
  afterAll(async () => {
    client?.close();
    await bus?.stop();
    tmp.cleanup();
  });

  it('lists a directory with names exactly as stored, sorted by their bytes', async () => {
    const listing = await client.request('list-directory', { snapshot: fx.first.slice(0, 8), client: 'web1', path: fx.data });
    expect(listing.snapshot).toBe(fx.first);
    expect(listing.client).toBe('web1');
    expect(listing.total).toBe(6);
    expect(listing.nextOffset).toBeNull();
    expect(listing.entries.map((e) => [e.name, e.type, e.size])).toEqual([
      [MARKUP_NAME, 'file', '7'],
      ['bad-\uFFFD-name.bin', 'file', '7'],
      ['big.bin', 'file', String(300 * 1024)],
      ['etc', 'dir', '0'],
      [`it's "quoted".txt`, 'file', '7'],
      ['two\nlines.txt', 'file', '8'],
    ]);
    expect([MARKUP_NAME, QUOTE_NAME, NEWLINE_NAME].every((n) => listing.entries.some((e) => e.name === n))).toBe(true);
    const bad = listing.entries.find((e) => e.nameRaw !== null)!;
    expect(Buffer.from(bad.nameRaw!, 'base64').equals(INVALID_UTF8_NAME)).toBe(true);
    const big = listing.entries.find((e) => e.name === 'big.bin')!;
    expect(big.mode).toBe(fs.statSync(path.join(fx.data, 'big.bin')).mode & 0o7777);
    expect(big.mtime).toBe(new Date(Math.floor(fs.statSync(path.join(fx.data, 'big.bin')).mtimeMs)).toISOString());
  });

  it('shows symlink targets, and the latest snapshot of a client by default', async () => {
    const listing = await client.request('list-directory', { snapshot: 'latest', client: 'web1', path: `${fx.data}/etc` });
    expect(listing.snapshot).toBe(fx.second);
    expect(listing.entries.map((e) => `${e.type} ${e.name}${e.target ? ` -> ${e.target}` : ''}`)).toEqual(['file added.conf', 'file hosts', 'symlink link -> hosts', 'dir nested']);
  });

  it('pages through a directory bigger than one reply may carry', async () => {
    const wide = path.join(tmp.dir, 'wide');
    fs.mkdirSync(wide);
    const longName = (i: number) => `${String(i).padStart(5, '0')}-${'n'.repeat(240)}`;
    for (let i = 0; i < 1500; i++) fs.writeFileSync(path.join(wide, longName(i)), '');
    await new LocalArchiver(fx.repo, { client: 'wide1', paths: [wide] }).run();
    const names: string[] = [];
    let offset: number | null = 0;
    let pages = 0;
    while (offset !== null) {
      const page: CommandResult<'list-directory'> = await client.request('list-directory', { snapshot: 'latest', client: 'wide1', path: wide, offset });
      expect(page.total).toBe(1500);
      names.push(...page.entries.map((e) => e.name));
      offset = page.nextOffset;
      pages++;
    }
    expect(pages).toBeGreaterThan(1);
    expect(names).toEqual(Array.from({ length: 1500 }, (_, i) => longName(i)));
  });

  it('compares two snapshots: added, changed and removed paths', async () => {
    const diff = await client.request('diff-snapshots', { client: 'web1', from: fx.first.slice(0, 8), to: 'latest' });
    expect(diff).toEqual({
      from: fx.first, to: fx.second, client: 'web1', truncated: false,
      added: [{ path: `${fx.data}/etc/added.conf`, type: 'file', size: '4' }],
      changed: [{ path: `${fx.data}/etc/hosts`, type: 'file', size: '33' }],
      removed: [{ path: `${fx.data}/etc/nested/removed.conf`, type: 'file', size: '4' }],
    });
    const within = await client.request('diff-snapshots', { client: 'web1', from: fx.first, to: fx.second, path: `${fx.data}/etc/nested` });
    expect([within.added.length, within.changed.length, within.removed.map((e) => e.path)]).toEqual([0, 0, [`${fx.data}/etc/nested/removed.conf`]]);
  });

  it('says what is wrong with a bad request', async () => {
    expect((await failure(client.request('list-directory', { snapshot: 'latest', client: 'web1', path: `${fx.data}/big.bin` }))).message)
      .toBe(`${fx.data}/big.bin in snapshot ${fx.second.slice(0, 8)} is a file, not a directory; download it instead of listing it.`);
    expect((await failure(client.request('list-directory', { snapshot: 'latest', client: 'web1', path: '/nowhere' }))).message)
      .toBe(`/nowhere is not in snapshot ${fx.second.slice(0, 8)}. \`haul ls ${fx.second.slice(0, 8)}\` lists what it holds.`);
    expect((await failure(client.request('list-directory', { snapshot: 'latest', client: 'nobody' }))).message)
      .toBe('there is no snapshot for client nobody yet. Run a backup first.');
    const across = await failure(client.request('diff-snapshots', { from: fx.first, to: 'latest', client: 'wide1' }));
    expect(across.message).toMatch(/^no snapshot ID starts with|is of client web1 but/);
    expect((await failure(client.request('list-directory', { snapshot: 'latest', path: 'relative' } as never))).code).toBe('InvalidRequest');
  });
});
