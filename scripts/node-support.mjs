// Which Node.js versions runfleet supports, checked against what the lock file installs.
// package.json `engines.node` is the promise. Every package in package-lock.json must run on every
// version it admits (test/scripts/node-support.test.ts), and scripts/aws-sdk-update.mjs moves the
// AWS SDK only as far as that promise allows: releases that need a newer Node.js come in the day
// `engines` stops admitting the older one.
import semver from 'semver';

/**
 * The AWS SDK clients runfleet depends on (and lib-storage, the S3 cache's multipart uploads),
 * pinned to exact versions in package.json.
 */
export const AWS_SDK_CLIENTS = [
  '@aws-sdk/client-auto-scaling',
  '@aws-sdk/client-ec2',
  '@aws-sdk/client-ec2-instance-connect',
  '@aws-sdk/client-s3',
  '@aws-sdk/lib-storage',
];

/** Scopes of the AWS SDK's own packages, which move together with the clients. */
export const AWS_SDK_SCOPES = ['@aws-sdk/', '@smithy/', '@aws-crypto/', '@aws/'];

/** The package name of a lock entry's path: `node_modules/a/node_modules/@b/c` → `@b/c`. */
export function lockEntryName(path) {
  return path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
}

/** Whether every Node.js version `supported` admits also satisfies `required` (an engines.node). */
export function covers(required, supported) {
  return semver.subset(supported, required);
}

/**
 * The lock's packages whose engines.node leaves out some Node.js version that `supported` admits,
 * one line each: `name@version needs node RANGE`.
 */
export function lockEngineProblems(lock, supported) {
  const problems = [];
  for (const [path, entry] of Object.entries(lock.packages ?? {})) {
    const required = entry.engines?.node;
    if (path === '' || typeof required !== 'string') continue;
    if (!covers(required, supported)) {
      problems.push(`${lockEntryName(path)}@${entry.version} needs node ${required}`);
    }
  }
  return [...new Set(problems)].sort();
}

/**
 * The newest stable release in `releases` (version → its engines.node, or undefined when it
 * declares none) that runs on every version `supported` admits; undefined when none does.
 */
export function newestCovering(releases, supported) {
  const fits = Object.entries(releases)
    .filter(
      ([version, required]) => !semver.prerelease(version) && (!required || covers(required, supported)),
    )
    .map(([version]) => version);
  return semver.rsort(fits)[0];
}
