import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Fleet } from '../../../src/model/fleet.js';
import type { GroupRef } from '../../../src/model/observed.js';
import { createLocalProvider } from '../../../src/providers/local/index.js';
import { manualTime } from '../../../src/util/time.js';

const T0 = '2026-03-01T10:00:00.000Z';
const ref: GroupRef = { fleet: 'ci', provider: 'local', name: 'ci' };
const fleet = { name: 'ci', provider: { type: 'local' } } as unknown as Fleet;

function setup(t: { testdir(): string }) {
  const stateDir = t.testdir();
  const clock = manualTime(T0);
  const provider = createLocalProvider({ stateDir, time: clock });
  const groupDir = join(stateDir, 'local', 'ci');
  return { stateDir, clock, provider, groupDir };
}

t.test('a group that was never applied is observed as absent', async (t) => {
  const { provider, stateDir } = setup(t);
  t.strictSame(await provider.observe([ref]), [
    { ref, exists: false, settings: {}, instances: [], diagnostics: [] },
  ]);
  t.notOk(existsSync(join(stateDir, 'local')), 'observe never creates anything');
});

t.test('applyGroup creates the group; increase adds running sandboxes', async (t) => {
  const { provider, groupDir, clock } = setup(t);
  await provider.applyGroup(fleet);
  await provider.applyGroup(fleet); // idempotent
  t.strictSame(await provider.observe([ref]), [
    { ref, exists: true, settings: {}, instances: [], diagnostics: [] },
  ]);

  t.equal(await provider.increase(ref, 2), 2);
  clock.advance(60_000);
  t.equal(await provider.increase(ref, 1), 1);
  t.equal(await provider.increase(ref, 0), 0);

  const [group] = await provider.observe([ref]);
  t.equal(group?.instances.length, 3);
  for (const i of group?.instances ?? []) {
    t.match(i.id, /^local-[0-9a-f]{8}$/);
    t.equal(i.state, 'running');
  }
  t.same(
    group?.instances.map((i) => i.launched_at),
    [T0, T0, '2026-03-01T10:01:00.000Z'],
    'launched_at from the clock, oldest first',
  );

  const first = group!.instances[0]!;
  const sandbox = join(groupDir, first.id);
  t.strictSame(JSON.parse(readFileSync(join(sandbox, 'instance.json'), 'utf8')), {
    id: first.id,
    fleet: 'ci',
    state: 'running',
    launched_at: T0,
  });
  t.strictSame(readdirSync(sandbox).sort(), ['instance.json', 'work'], 'no temp file left behind');
});

t.test('increase on a group that does not exist is refused', async (t) => {
  const { provider } = setup(t);
  await t.rejects(provider.increase(ref, 1), { code: 'PROVIDER', hint: /apply the fleet first/ });
  await provider.applyGroup(fleet);
  await t.rejects(provider.increase(ref, -1), { code: 'INTERNAL' });
  await t.rejects(provider.increase(ref, 1.5), { code: 'INTERNAL' });
});

t.test('decrease removes exactly the given ids and tolerates gone ones', async (t) => {
  const { provider, groupDir } = setup(t);
  await provider.applyGroup(fleet);
  await provider.increase(ref, 3);
  const ids = (await provider.observe([ref]))[0]!.instances.map((i) => i.id);
  const [victim, ...kept] = ids as [string, ...string[]];

  t.strictSame(await provider.decrease(ref, [victim]), [victim]);
  t.notOk(existsSync(join(groupDir, victim)));
  t.notOk(existsSync(join(groupDir, `${victim}.deleting`)));
  t.same((await provider.observe([ref]))[0]!.instances.map((i) => i.id).sort(), [...kept].sort());

  t.strictSame(
    await provider.decrease(ref, [victim, victim, 'local-deadbeef']),
    [victim, 'local-deadbeef'],
    'gone and never-existing ids count as removed, duplicates once',
  );
  t.equal((await provider.observe([ref]))[0]!.instances.length, 2, 'nothing else was touched');
});

t.test('a decrease interrupted after the rename is finished by the retry', async (t) => {
  const { provider, groupDir } = setup(t);
  await provider.applyGroup(fleet);
  await provider.increase(ref, 1);
  const id = (await provider.observe([ref]))[0]!.instances[0]!.id;

  // Simulate a crash between marking and removing: both `<id>` and a leftover `<id>.deleting`.
  mkdirSync(join(groupDir, `${id}.deleting`, 'work'), { recursive: true });
  let [group] = await provider.observe([ref]);
  t.same(
    group?.instances.map((i) => [i.id, i.state]),
    [[id, 'deleting']],
    'a half-removed sandbox is deleting, not a second instance',
  );

  t.strictSame(await provider.decrease(ref, [id]), [id]);
  [group] = await provider.observe([ref]);
  t.same(group?.instances, []);
  t.same(readdirSync(groupDir), []);

  // The usual crash leaves only the renamed directory; the retry removes it.
  mkdirSync(join(groupDir, `${id}.deleting`, 'work'), { recursive: true });
  t.same(
    (await provider.observe([ref]))[0]?.instances.map((i) => i.state),
    ['deleting'],
  );
  t.strictSame(await provider.decrease(ref, [id]), [id]);
  t.same(readdirSync(groupDir), []);
});

t.test('half-created, deleting and foreign entries are reported as such', async (t) => {
  const { provider, groupDir } = setup(t);
  await provider.applyGroup(fleet);
  mkdirSync(join(groupDir, 'local-0000aaaa.creating')); // crashed before it was renamed into place
  mkdirSync(join(groupDir, 'local-0000bbbb.deleting'));
  writeFileSync(
    join(groupDir, 'local-0000bbbb.deleting', 'instance.json'),
    JSON.stringify({ id: 'local-0000bbbb', fleet: 'ci', state: 'running', launched_at: T0 }),
  );
  mkdirSync(join(groupDir, 'local-0000cccc.deleting')); // its instance.json already removed
  mkdirSync(join(groupDir, 'notes'));
  writeFileSync(join(groupDir, 'stray.tmp'), 'x');

  const [group] = await provider.observe([ref]);
  const states = Object.fromEntries(group!.instances.map((i) => [i.id, i.state]));
  t.strictSame(states, { 'local-0000bbbb': 'deleting', 'local-0000cccc': 'deleting' });
  t.ok(
    group!.instances.every((i) => !Number.isNaN(Date.parse(i.launched_at))),
    'every launched_at is a time',
  );
  t.same(group!.diagnostics.map((d) => d.code).sort(), ['LOCAL_INCOMPLETE_SANDBOX', 'LOCAL_UNKNOWN_ENTRY']);
});

t.test('state persists across provider instances', async (t) => {
  const { provider, stateDir } = setup(t);
  await provider.applyGroup(fleet);
  await provider.increase(ref, 2);
  const before = await provider.observe([ref]);

  const again = createLocalProvider({ stateDir, time: manualTime('2030-01-01T00:00:00Z') });
  t.strictSame(await again.observe([ref]), before);
  const victim = before[0]!.instances[0]!.id;
  await again.decrease(ref, [victim]);
  t.same(
    (await provider.observe([ref]))[0]!.instances.map((i) => i.id),
    [before[0]!.instances[1]!.id],
  );
});

t.test('observe reads several groups at once', async (t) => {
  const { provider } = setup(t);
  const other: GroupRef = { fleet: 'docker-builds', provider: 'local', name: 'docker-builds' };
  await provider.applyGroup({ ...fleet, name: 'docker-builds' });
  await provider.increase(other, 1);
  const groups = await provider.observe([ref, other]);
  t.same(
    groups.map((g) => [g.ref.name, g.exists, g.instances.length]),
    [
      ['ci', false, 0],
      ['docker-builds', true, 1],
    ],
  );
});

t.test('deleteGroup removes an empty group and refuses one with instances', async (t) => {
  const { provider, groupDir } = setup(t);
  await provider.deleteGroup(ref, undefined); // absent: nothing to do
  await provider.applyGroup(fleet);
  await provider.increase(ref, 1);
  const id = (await provider.observe([ref]))[0]!.instances[0]!.id;

  await t.rejects(provider.deleteGroup(ref, fleet), {
    code: 'PROVIDER',
    message: new RegExp(`still has 1 instance\\(s\\): ${id}`),
    hint: /decrease its instances first/,
  });
  t.ok(existsSync(join(groupDir, id)), 'refusal touched nothing');

  await provider.decrease(ref, [id]);
  mkdirSync(join(groupDir, 'local-0000dddd.deleting')); // a leftover does not block
  await provider.deleteGroup(ref, fleet);
  t.notOk(existsSync(groupDir));
  t.same((await provider.observe([ref]))[0]?.exists, false);
});

t.test('connectInfo and heartbeat', async (t) => {
  const { provider, groupDir } = setup(t);
  await provider.applyGroup(fleet);
  await provider.increase(ref, 1);
  const id = (await provider.observe([ref]))[0]!.instances[0]!.id;

  t.strictSame(await provider.connectInfo(ref, id), {
    id,
    protocol: 'local',
    address: 'localhost',
    port: 0,
    username: userInfo().username,
    workdir: join(groupDir, id, 'work'),
  });
  t.equal(await provider.heartbeat(ref, id), true);

  await provider.decrease(ref, [id]);
  t.equal(await provider.heartbeat(ref, id), false);
  await t.rejects(provider.connectInfo(ref, id), { code: 'PROVIDER', message: /does not exist/ });
});

t.test('names that could escape the state directory are rejected before any fs access', async (t) => {
  const { provider, stateDir } = setup(t);
  await provider.applyGroup(fleet);
  const outside = join(stateDir, 'precious');
  mkdirSync(outside);

  const badGroups = ['..', '../..', 'a/b', 'CI', '', '-ci', 'ci.', 'x'.repeat(64), 'a\\b'];
  for (const name of badGroups) {
    const bad: GroupRef = { fleet: name, provider: 'local', name };
    await t.rejects(provider.observe([bad]), { code: 'PROVIDER', message: /invalid group name/ }, name);
    await t.rejects(provider.increase(bad, 1), { code: 'PROVIDER' }, name);
    await t.rejects(provider.deleteGroup(bad, undefined), { code: 'PROVIDER' }, name);
  }
  await t.rejects(provider.applyGroup({ ...fleet, name: '../../precious' }), { code: 'PROVIDER' });

  const badIds = [
    '..',
    '../../precious',
    'local-../x',
    'local-',
    'local-xyz',
    'local-1/..',
    '/etc',
    'local-ab.deleting',
  ];
  for (const id of badIds) {
    await t.rejects(provider.decrease(ref, ['local-0000aaaa', id]), { message: /invalid instance id/ }, id);
    await t.rejects(provider.heartbeat(ref, id), { code: 'PROVIDER' }, id);
    await t.rejects(provider.connectInfo(ref, id), { code: 'PROVIDER' }, id);
  }
  t.ok(existsSync(outside), 'nothing outside the group was removed');
  t.ok(existsSync(join(stateDir, 'local', 'ci')));
});

t.test('a custom id prefix is used and validated', async (t) => {
  const stateDir = t.testdir();
  const provider = createLocalProvider({ stateDir, idPrefix: 'sim-' });
  await provider.applyGroup(fleet);
  await provider.increase(ref, 1);
  t.match((await provider.observe([ref]))[0]!.instances[0]!.id, /^sim-[0-9a-f]{8}$/);
  t.throws(() => createLocalProvider({ stateDir, idPrefix: '../' }), { code: 'INTERNAL' });
});

t.test('an aborted signal stops before any work', async (t) => {
  const { provider, stateDir } = setup(t);
  const controller = new AbortController();
  controller.abort();
  await t.rejects(provider.applyGroup(fleet, controller.signal), { name: 'AbortError' });
  t.notOk(existsSync(join(stateDir, 'local')));
});
