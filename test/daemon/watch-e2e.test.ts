/**
 * The real `runfleet watch` process on the local provider in a temp directory (compiled dist:
 * build with `npx tsc -p tsconfig.build.json` first, as the CLI tests need).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { StatusReport } from '../../src/daemon/status.js';
import { openSqliteStore } from '../../src/store/index.js';
import { BIN, runCli, until } from '../cli/helpers.js';

const fleetYaml = (idle: number, maxInstances = '4') =>
  `name: alpha\nprovider: { type: local }\ncapacity_per_instance: 1\nmax_instances: ${maxInstances}\n` +
  `policy:\n  - idle_count: ${idle}\n    idle_time: 20m\n`;

t.test(
  'runfleet watch: converges, reloads edits, keeps a fleet on an invalid edit, stops on SIGTERM',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'runfleet-watch-'));
    await mkdir(join(dir, 'fleets'));
    const file = join(dir, 'fleets', 'alpha.yaml');
    await writeFile(file, fleetYaml(2));
    const child = spawn(
      process.execPath,
      [BIN, 'watch', '--listen', '127.0.0.1:0', '--interval', '2s', '--grace', '5s'],
      {
        cwd: dir,
        env: { ...process.env, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });

    const listen = await until('watch.json', async () => {
      const info = JSON.parse(await readFile(join(dir, '.runfleet', 'watch.json'), 'utf8')) as {
        listen: string;
      };
      return info.listen;
    });
    const status = async () => (await (await fetch(`http://${listen}/v1/status`)).json()) as StatusReport;
    const ready = (s: StatusReport) => s.fleets[0]?.instances.filter((i) => i.state === 'ready').length ?? 0;

    await until('2 ready instances', async () =>
      (await status()).fleets[0]?.instances.length === 2 ? true : undefined,
    );
    t.equal((await fetch(`http://${listen}/healthz`)).status, 200);

    const cli = await runCli(dir, ['status']);
    t.equal(cli.code, 0);
    t.match(cli.stdout, /daemon running/);
    t.match(cli.stdout, /policy now: policy\[0\]: idle_count 2/);
    t.match(cli.stdout, /slots: idle 2, reserved 0, acquired 0/);

    const metrics = await (await fetch(`http://${listen}/metrics`)).text();
    t.match(
      metrics,
      /fleeting_provisioner_instances\{runner="alpha",runner_name="alpha",system_id="[^"]+",state="running"\} 2/,
    );
    t.match(metrics, /fleeting_taskscaler_desired_instances\{runner="alpha"[^}]*\} 2/);
    t.match(metrics, /fleeting_taskscaler_scale_operations_total\{runner="alpha"[^}]*operation="up"\} 1/);
    t.match(metrics, /runfleet_reconcile_duration_seconds_count/);
    t.match(
      metrics,
      /fleeting_provisioner_instance_is_running_time_seconds_count\{[^}]*runner="alpha"[^}]*\} 2/,
    );
    t.match(metrics, /fleeting_provisioner_instances\{[^}]*state="requested"\} 0/);

    // apply goes through the running daemon: auto fleets are its to converge, nothing to approve.
    const through = await runCli(dir, ['apply', '--auto-approve']);
    t.equal(through.code, 0, through.stderr);
    t.match(through.stdout, /runfleet watch is running/);
    t.match(through.stdout, /No apply: manual fleet has configuration changes to approve/);
    await writeFile(join(dir, 'saved.plan'), '{}');
    const saved = await runCli(dir, ['plan', '--out', 'saved.plan']);
    t.equal(saved.code, 0);
    const locked = await runCli(dir, ['apply', 'saved.plan']);
    t.equal(locked.code, 1);
    t.match(locked.stderr, /runfleet watch .* holds the state; a saved plan cannot be applied while it runs/);

    await writeFile(file, fleetYaml(3));
    await until('3 instances after the edit', async () =>
      (await status()).fleets[0]?.instances.length === 3 ? true : undefined,
    );

    await writeFile(file, fleetYaml(1, 'many'));
    const held = await until('config error reported', async () => {
      const s = await status();
      return s.config_errors.length > 0 ? s : undefined;
    });
    t.equal(held.fleets[0]?.status, 'held');
    t.match(held.config_errors[0], /alpha\.yaml:4:\d+: .*\(at \/max_instances\)/);
    await new Promise((r) => setTimeout(r, 600));
    t.equal(ready(await status()), 3, 'the fleet keeps running on its last good definition');
    t.match(
      await (await fetch(`http://${listen}/metrics`)).text(),
      /runfleet_config_errors\{file="[^"]*alpha\.yaml"\} 1/,
    );

    const demand = await fetch(`http://${listen}/v1/fleets/alpha/demand`, {
      method: 'POST',
      body: JSON.stringify({ jobs: 1, duration_ms: 300 }),
    });
    t.equal(demand.status, 202);
    await until('a synthetic job counted', async () => {
      const s = await status();
      return s.fleets[0]?.instances.some((i) => i.use_count === 1) ? true : undefined;
    });

    child.kill('SIGTERM');
    t.equal(await exited, 0, 'SIGTERM exits cleanly');
    t.match(stdout, /"state":"stopped","msg":"daemon state changed"/);
    t.notMatch(stdout, /privateKey|glrt-/);
    const store = await openSqliteStore(join(dir, '.runfleet', 'state.db'));
    t.equal(await store.currentLock(), undefined, 'lock released');
    // 3 idle + 1 added for the job's slot; none removed (delete_instances_on_shutdown is off).
    t.equal((await store.listInstances('alpha')).length, 4, 'instances stay');
    t.same(await store.listOpenIntents(), []);
    await store.close();
  },
);
