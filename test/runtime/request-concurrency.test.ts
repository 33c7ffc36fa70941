/**
 * The adaptive request concurrency arithmetic against GitLab Runner's (commands/builds_helper.go):
 * +10 % per job, -5 % per empty answer, halved on push-back, within [1, request_concurrency].
 */
import t from 'tap';
import { AdaptiveConcurrency } from '../../src/runtime/request-concurrency.js';

const job = { job: true, retried: false };
const empty = { job: false, retried: false };
const pushedBack = { job: true, retried: true };

t.test('starts at one request and grows 10 % per job, rounded up', async (t) => {
  const a = new AdaptiveConcurrency(() => 16);
  t.equal(a.allowed, 1);
  a.record(job);
  t.equal(a.limit, 1.1);
  t.equal(a.allowed, 2, 'ceil(1.1): a second request may open after the first job');
  let jobs = 1;
  while (a.allowed < 16) {
    a.record(job);
    jobs++;
  }
  // 1.1^28 ≈ 14.4 and 1.1^29 ≈ 15.9: sixteen requests may be open after the 29th job.
  t.equal(jobs, 29);
  a.record(job);
  t.equal(a.limit, 16, 'never above request_concurrency');
});

t.test('an empty answer shrinks it 5 %, push-back halves it, never below one', async (t) => {
  const a = new AdaptiveConcurrency(() => 8);
  for (let i = 0; i < 40; i++) a.record(job);
  t.equal(a.limit, 8);
  a.record(empty);
  t.equal(a.limit, 7.6);
  t.equal(a.allowed, 8);
  a.record(pushedBack);
  t.equal(a.limit, 3.8, 'a job that came only after a 429/5xx counts as push-back, not capacity');
  t.equal(a.allowed, 4);
  for (let i = 0; i < 100; i++) a.record(empty);
  t.equal(a.limit, 1);
  t.equal(a.allowed, 1);
});

t.test('request_concurrency is read on every use (a reload lowers it)', async (t) => {
  let max = 16;
  const a = new AdaptiveConcurrency(() => max);
  for (let i = 0; i < 40; i++) a.record(job);
  t.equal(a.allowed, 16);
  max = 4;
  t.equal(a.allowed, 4);
  a.record(empty);
  t.equal(a.limit, 4, 'clamped to the lowered ceiling after the answer, as GitLab Runner clamps');
  max = 0;
  t.equal(a.allowed, 1, 'a ceiling below one still allows one request');
});
