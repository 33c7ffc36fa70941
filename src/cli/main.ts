/**
 * The CLI entry: parses argv, runs one command, maps errors to exit codes. The only place that
 * calls process.exit.
 *
 * Exit codes: 0 success; 1 error (invalid fleets, failed or partial apply, locked state, stale
 * plan); 2 only with `plan --detailed-exitcode`, meaning the plan has changes.
 */
import { Command, Option } from 'commander';
import { ErrorCode, FleetError, isFleetError } from '../errors.js';
import { processIo, type Io } from './io.js';
import type { GlobalOptions } from './root.js';
import { parseDuration } from '../util/duration.js';
import { versionLine } from '../version.js';

/**
 * Each command's module is imported when the command runs, so `validate` does not load the
 * daemon, ssh2 or dockerode: start-up is the cost of what the command uses.
 */
const commands = {
  validate: () => import('./commands/validate.js'),
  plan: () => import('./commands/plan.js'),
  apply: () => import('./commands/apply.js'),
  state: () => import('./commands/state.js'),
  watch: () => import('./commands/watch.js'),
  status: () => import('./commands/status.js'),
  managers: () => import('./commands/managers.js'),
  demo: () => import('./commands/demo.js'),
  coordinator: () => import('../devtools/coordinator/cli.js'),
  import: () => import('./commands/import.js'),
};

/** The daemon's default listen address (src/daemon/http.ts), kept here so help needs no import. */
const DEFAULT_LISTEN = '127.0.0.1:9252';

const EXAMPLES = `
Examples:
  runfleet validate                     check every file under ./fleets
  runfleet plan                         show what apply would change
  runfleet plan --out fleet.plan        save a plan for review, then:
  runfleet apply fleet.plan             apply exactly that plan (refused if stale)
  runfleet apply --auto-approve         plan and apply without asking (CI)
  runfleet plan --detailed-exitcode     exit 2 when there are changes (drift checks)
  runfleet state list                   what the state store holds
  runfleet history                      past applies
  runfleet watch                        run the daemon: converge continuously, reload on edit
  runfleet status                       fleets, instances, slots, policy in force now
  runfleet managers                     managers sharing a PostgreSQL state, their fleets
  runfleet demo                         the whole loop with no cloud and no GitLab
  runfleet import config.toml           turn GitLab Runner autoscaler runners into fleet files

Exit codes: 0 success, 1 error, 2 changes present (plan --detailed-exitcode only).
Environment: RUNFLEET_DIR and RUNFLEET_STATE set --dir and --state; NO_COLOR disables colour.`;

export function buildProgram(io: Io, setExit: (code: number) => void): Command {
  const program = new Command('runfleet')
    .description('Declarative autoscaling GitLab CI runner fleets: validate, plan, apply.')
    .option('-d, --dir <dir>', 'fleets directory', process.env.RUNFLEET_DIR ?? 'fleets')
    .option(
      '-s, --state <file|url>',
      'state store: a SQLite file, or postgres://user@host:port/db (password from PGPASSWORD)',
      process.env.RUNFLEET_STATE ?? '.runfleet/state.db',
    )
    .option('--no-color', 'never colour output')
    .version(versionLine(), '-V, --version', 'print the runfleet and Node.js versions and the platform')
    .addHelpText('after', EXAMPLES)
    .showHelpAfterError('(run runfleet --help for usage)')
    .exitOverride();

  const globals = (): GlobalOptions => {
    const o = program.opts<{ dir: string; state: string; color: boolean }>();
    return { dir: o.dir, state: o.state, color: o.color && io.color };
  };
  const ioFor = (): Io => ({ ...io, color: globals().color });

  program
    .command('validate')
    .description('check fleet files against the schema and rules; every error with file:line:col')
    .action(async () => setExit(await (await commands.validate()).validate(globals(), ioFor())));

  program
    .command('import')
    .argument('<config.toml>', "GitLab Runner's config.toml (often /etc/gitlab-runner/config.toml)")
    .description(
      'turn docker-autoscaler and instance runners of a GitLab Runner config.toml into fleet files',
    )
    .option('-o, --out <dir>', 'directory for the fleet files (default: --dir)')
    .option('--dry-run', 'print the files and the report; write nothing', false)
    .option('--force', 'overwrite existing files, even ones no import of the same runner wrote', false)
    .option(
      '--region <region>',
      "AWS region for runners whose plugin_config has none (the plugin used the SDK's)",
    )
    .addHelpText(
      'after',
      `
Examples:
  runfleet import /etc/gitlab-runner/config.toml --dry-run   show the fleet files and the report only
  runfleet import config.toml                                write fleets/<runner-name>.yaml, one per runner
  runfleet import config.toml --out fleets/imported --region eu-west-1
  runfleet import config.toml && runfleet validate && runfleet plan

Each runner with executor "docker-autoscaler" or "instance" and GitLab's AWS plugin becomes a fleet
adopting the plugin's Auto Scaling group; other executors are skipped, other fleeting plugins are not
supported yet. The report lists every setting carried over, not carried over (and why) and whose
meaning differs. The token is never written: each fleet reads it from RUNFLEET_TOKEN_<NAME>.
A file is only overwritten when a previous import of the same runner wrote it (else --force).
Exit codes: 0 every autoscaler runner imported, 1 otherwise (or a TOML syntax error: file:line:col).
SOURCE_DATE_EPOCH, when set, is the import date written in the files' header.`,
    )
    .action(async (file: string, o: { out?: string; dryRun: boolean; force: boolean; region?: string }) =>
      setExit(
        await (
          await commands.import()
        ).importCommand(
          file,
          {
            out: o.out ?? globals().dir,
            dir: globals().dir,
            dryRun: o.dryRun,
            force: o.force,
            ...(o.region !== undefined && { region: o.region }),
          },
          ioFor(),
        ),
      ),
    );

  program
    .command('plan')
    .description('compare fleet files with the observed state and show what apply would do')
    .option('-o, --out <file>', 'save the plan for `runfleet apply FILE`')
    .addOption(
      new Option('-f, --format <format>', 'output format')
        .choices(['text', 'markdown', 'json'])
        .default('text'),
    )
    .option('--detailed-exitcode', '0 = no changes, 1 = error, 2 = changes (Terraform convention)', false)
    .action(async (o: { out?: string; format: 'text' | 'markdown' | 'json'; detailedExitcode: boolean }) =>
      setExit(await (await commands.plan()).plan(globals(), o, ioFor())),
    );

  program
    .command('apply')
    .argument('[plan-file]', 'a plan saved with `plan --out`; applied exactly, refused if stale')
    .description('carry out a plan: without a file, plan, show it and ask for "yes"')
    .option('--auto-approve', 'skip the confirmation (needed when stdin is not a terminal)', false)
    .action(async (planFile: string | undefined, o: { autoApprove: boolean }) =>
      setExit(
        await (await commands.apply()).apply(globals(), { planFile, autoApprove: o.autoApprove }, ioFor()),
      ),
    );

  const state = program.command('state').description('inspect the state store');
  state
    .command('list')
    .description('applied fleets and the instance ledger')
    .option('--json', 'machine-readable output', false)
    .action(async (o: { json: boolean }) =>
      setExit(await (await commands.state()).stateList(globals(), o.json, ioFor())),
    );

  program
    .command('history')
    .description('past applies, newest first')
    .option('-n, --limit <n>', 'how many', (v) => Number.parseInt(v, 10), 20)
    .option('--json', 'machine-readable output', false)
    .action(async (o: { limit: number; json: boolean }) =>
      setExit(await (await commands.state()).history(globals(), o.limit, o.json, ioFor())),
    );

  program
    .command('force-unlock')
    .argument('<lock-id>', 'the id shown in the "state is locked" error')
    .description('release a lock left by a process that is gone (unlocking a live one risks two writers)')
    .action(async (id: string) =>
      setExit(await (await commands.state()).forceUnlock(globals(), id, ioFor())),
    );

  program
    .command('watch')
    .description('run the daemon: keep every fleet matched to its file and its demand until SIGTERM')
    .option('--listen <host:port>', 'metrics, health and status endpoint', DEFAULT_LISTEN)
    .option('--grace <duration>', 'how long SIGTERM waits for running jobs', '10m')
    .option('--interval <duration>', 'how often providers are observed when nothing is moving', '1m')
    .option(
      '--heartbeat-interval <duration>',
      'how often an idle ready instance is checked (3 failures replace it)',
      '1m',
    )
    .addOption(
      new Option('--log-level <level>', 'JSON log level on stdout')
        .choices(['debug', 'info', 'warn', 'error'])
        .default('info'),
    )
    .addHelpText(
      'after',
      `
Examples:
  runfleet watch                                  manage ./fleets, metrics on ${DEFAULT_LISTEN}
  runfleet watch --listen 127.0.0.1:0 --grace 2m  pick a free port; give jobs 2 minutes on SIGTERM
  curl -s localhost:9252/metrics                  Prometheus metrics (GitLab fleeting names)
  curl -s -XPOST localhost:9252/v1/fleets/alpha/demand -d '{"jobs":3,"duration_ms":60000}'
                                                  feed synthetic jobs (demo, no GitLab needed)
While it runs the daemon holds the state lock; runfleet apply then goes through it: it shows the
plan and, once confirmed, approves each apply: manual fleet's reviewed change on the daemon.
Fleets with a gitlab block get a GitLab runner that takes jobs and runs them on their instances.`,
    )
    .action(
      async (o: {
        listen: string;
        grace: string;
        interval: string;
        heartbeatInterval: string;
        logLevel: string;
      }) =>
        setExit(
          await (
            await commands.watch()
          ).watch(
            globals(),
            {
              listen: o.listen,
              graceMs: parseDuration(o.grace),
              intervalMs: parseDuration(o.interval),
              heartbeatIntervalMs: parseDuration(o.heartbeatInterval),
              logLevel: o.logLevel as 'debug' | 'info' | 'warn' | 'error',
            },
            ioFor(),
          ),
        ),
    );

  program
    .command('status')
    .description('fleets, instances (state, use count), slots and the policy in force now')
    .option('--json', 'machine-readable output', false)
    .option('--daemon <host:port>', 'ask this daemon (default: the one running on this state file)')
    .addHelpText(
      'after',
      `
Examples:
  runfleet status                   from the running daemon, else from the state store
  runfleet status --json | jq '.fleets[] | {name, slots}'`,
    )
    .action(async (o: { json: boolean; daemon?: string }) =>
      setExit(
        await (
          await commands.status()
        ).status(globals(), { json: o.json, ...(o.daemon ? { daemon: o.daemon } : {}) }, ioFor()),
      ),
    );

  program
    .command('managers')
    .description('the managers sharing a PostgreSQL state store: heartbeats and the fleets each owns')
    .option('--json', 'machine-readable output', false)
    .action(async (o: { json: boolean }) =>
      setExit(await (await commands.managers()).managers(globals(), o.json, ioFor())),
    );

  program
    .command('demo')
    .description('the whole loop on the embedded defaults: queue jobs, scale up, run, report, scale down')
    .option('--timeout <seconds>', 'give up after this long', (v) => Number.parseInt(v, 10), 180)
    .addHelpText(
      'after',
      `
Starts a GitLab-compatible test coordinator on loopback with example jobs, writes a local fleet for
it under the state directory (.runfleet/demo/), and runs the manager (daemon + job runtime) until
every job has reported and the fleet is back at zero instances. Needs no cloud and no GitLab.`,
    )
    .action(async (o: { timeout: number }) =>
      setExit(await (await commands.demo()).demo(globals(), { timeoutMs: o.timeout * 1000 }, ioFor())),
    );

  const dev = program.command('dev').description('tools for developing and testing runfleet');
  dev
    .command('coordinator')
    .description('serve a GitLab-compatible job API on loopback with queued test jobs (test use only)')
    .option('-p, --port <port>', 'port to listen on', (v) => Number.parseInt(v, 10), 8099)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--jobs <file>', 'YAML/JSON jobs to queue: [{name, script, after_script?, variables?, timeout?}]')
    .option(
      '--token-env <name>',
      'accept the runner token in this environment variable (default: a random one, printed)',
    )
    .action(async (o: { port: number; host: string; jobs?: string; tokenEnv?: string }) => {
      const token = o.tokenEnv ? process.env[o.tokenEnv] : undefined;
      if (o.tokenEnv && !token) {
        throw new FleetError(ErrorCode.USAGE, `environment variable ${o.tokenEnv} is not set`, {
          hint: `export ${o.tokenEnv}=glrt-... first`,
        });
      }
      setExit(
        await (
          await commands.coordinator()
        ).runDevCoordinator(
          {
            port: o.port,
            host: o.host,
            ...(o.jobs ? { jobsFile: o.jobs } : {}),
            ...(token ? { token } : {}),
          },
          ioFor(),
        ),
      );
    });

  return program;
}

export async function main(
  argv: string[],
  io: Io = processIo({ noColor: argv.includes('--no-color') }),
): Promise<void> {
  let code = 0;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    if (argv.length === 0) {
      program.outputHelp();
    } else {
      await program.parseAsync(argv, { from: 'user' });
    }
  } catch (e) {
    code = handleError(e, io);
  }
  process.exitCode = code;
}

function handleError(e: unknown, io: Io): number {
  const ce = e as { code?: string; exitCode?: number };
  if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) {
    // commander has already printed help or the usage error.
    return ce.code === 'commander.helpDisplayed' || ce.code === 'commander.version' ? 0 : 1;
  }
  if (isFleetError(e)) {
    io.err(
      `Error: ${e.message}` +
        (e.hint ? `\n  hint: ${e.hint}` : '') +
        `\n  code: ${e.code}${e.retryable ? ' (retrying may help)' : ''}`,
    );
    return 1;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  io.err(
    `Internal error: ${err.message}\n${err.stack ?? ''}\n` +
      'This is a bug in runfleet; please report it with the command you ran.',
  );
  return 1;
}
