#!/usr/bin/env node
// A stand-in for `python -m riemannlora.worker run ...` in the engine's unit tests (the real worker is
// exercised by test/integration/): it follows the same contract (status.json, events.jsonl, stderr) in a
// few milliseconds. Behaviour from FAKE_MODE: complete | crash | silent-exit | slow-start | hold (runs until
// SIGINT, then reports stopped) | busy (the run directory is held by another worker: exits 75 and writes
// nothing, like the real worker's lock; with FAKE_BUSY_AFTER_RUNNING=1 it first waits until status.json
// names another pid as running). FAKE_STEPS: metric count, FAKE_STEP_MS: sleep per step,
// FAKE_START_DELAY_MS: sleep before anything is written (a worker still importing).
import { appendFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const runDir = args[args.indexOf('--run-dir') + 1];
const mode = process.env.FAKE_MODE ?? 'complete';
const steps = Number(process.env.FAKE_STEPS ?? 20);
const now = () => Date.now() / 1000;
const status = (doc) => {
  writeFileSync(join(runDir, 'status.json.tmp'), JSON.stringify({ version: 1, pid: process.pid, host: hostname(), updated_at: now(), ...doc }));
  renameSync(join(runDir, 'status.json.tmp'), join(runDir, 'status.json'));
};
const emit = (e) => appendFileSync(join(runDir, 'events.jsonl'), `${JSON.stringify({ version: 1, time: now(), ...e })}\n`);

if (mode === 'busy') {
  if (process.env.FAKE_BUSY_AFTER_RUNNING) {
    for (let i = 0; i < 500; i++) {
      let st;
      try {
        st = JSON.parse(readFileSync(join(runDir, 'status.json'), 'utf8'));
      } catch {
        st = undefined;
      }
      if (st?.state === 'running' && st.pid !== process.pid) break;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  process.exit(75); // the real worker's EXIT_BUSY; like it, nothing is written (its stderr is the run's log)
}
if (process.env.FAKE_START_DELAY_MS) await new Promise((r) => setTimeout(r, Number(process.env.FAKE_START_DELAY_MS)));
if (process.env.FAKE_LOG) appendFileSync(process.env.FAKE_LOG, `start ${runDir} ${Date.now()}\n`);
if (mode === 'slow-start') await new Promise((r) => setTimeout(r, 30_000)); // SIGINT ends it (default action)
if (mode === 'silent-exit') {
  process.stderr.write('fake worker: giving up before writing anything\n');
  process.exit(3);
}
if (mode === 'hold') {
  // The handler first: a test may send SIGINT as soon as status.json says running.
  process.on('SIGINT', () => {
    emit({ type: 'finished', status: 'stopped', summary: { steps: 1 } });
    status({ state: 'stopped', step: 1, ended_at: now(), exit_code: 0 });
    process.exit(0);
  });
  status({ state: 'running', started_at: now(), step: 0 });
  emit({ type: 'started', device: 'cpu', dtype: 'fp32', trainable_params: 10, total_params: 100, task: 'synthetic-lowrank', method: 'fake+fake', steps });
  emit({ type: 'metric', step: 1, split: 'train', loss: 1 });
  await new Promise(() => setInterval(() => {}, 1 << 30)); // until the signal
}
status({ state: 'running', started_at: now(), step: 0 });
emit({ type: 'started', device: 'cpu', dtype: 'fp32', trainable_params: 10, total_params: 100, task: 'synthetic-lowrank', method: 'fake+fake', steps });
for (let s = 1; s <= steps; s++) {
  emit({ type: 'metric', step: s, split: 'train', loss: 1 / s, memory_bytes: 1000 + s });
  if (s % 5 === 0) emit({ type: 'eval', step: s, metrics: { loss: 1.1 / s } });
  await new Promise((r) => setTimeout(r, Number(process.env.FAKE_STEP_MS ?? 2)));
}
if (mode === 'crash') {
  appendFileSync(join(runDir, 'events.jsonl'), '{"type":"metric","version":1,"ti');
  process.stderr.write('Traceback (most recent call last):\nRuntimeError: boom from the fake worker\n');
  process.exit(1);
}
emit({ type: 'finished', status: 'completed', summary: { steps } });
status({ state: 'completed', step: steps, ended_at: now(), exit_code: 0 });
if (process.env.FAKE_LOG) appendFileSync(process.env.FAKE_LOG, `end ${runDir} ${Date.now()}\n`);
