/**
 * Integration tests need real programs (sshd, dockerd, git, busybox). On a laptop without them a
 * test file skips loudly; on CI (`CI=true`) a missing program is a failure, so a CI image that lost
 * a package cannot turn the suite green by skipping everything.
 */
import { accessSync, constants } from 'node:fs';
import type { Test } from 'tap';

export type TopologyProgram =
  | 'sshd'
  | 'dockerd'
  | 'docker'
  | 'git'
  | 'git-lfs'
  | 'busybox'
  | 'ssh-keygen'
  | 'docker-registry'
  | 'htpasswd'
  | 'python3';

const SEARCH = ['/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/bin', '/bin', '/sbin'];

/** Absolute path of `program`, or undefined when it is not installed. */
export function findProgram(program: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SEARCH];
  for (const dir of dirs) {
    try {
      accessSync(`${dir}/${program}`, constants.X_OK);
      return `${dir}/${program}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

type SkippableTest = Pick<Test, 'skip' | 'fail'>;

/**
 * True when every program is present. Otherwise fails the test on CI, or skips it with a loud
 * message elsewhere, and returns false: `if (!requireOrSkip(t, 'sshd')) return;`.
 */
export function requireOrSkip(t: SkippableTest, ...what: TopologyProgram[]): boolean {
  const missing = what.filter((p) => findProgram(p) === undefined);
  if (missing.length === 0) return true;
  missingComponent(
    t,
    `MISSING ${missing.join(', ')}: integration test not run. ` +
      `Install with: apt-get install -y openssh-server docker.io busybox-static git git-lfs docker-registry apache2-utils python3`,
  );
  return false;
}

/** A component a test needs is missing: a failure on CI (`CI=true`), else a loud skip. */
export function missingComponent(t: SkippableTest, message: string): void {
  if (process.env.CI === 'true') {
    t.fail(message);
  } else {
    console.error(`\n!!!!!!!! ${message} !!!!!!!!\n`);
    void t.skip(message, () => undefined);
  }
}
