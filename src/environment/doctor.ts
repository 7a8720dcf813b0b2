// "Check Environment": runs `python -m riemannlora.worker doctor` with the worker's PYTHONPATH and turns
// each problem into a message with an action. The report parsing is vscode-free (unit-tested).
import { execFile } from 'node:child_process';
import { workerCwd, workerEnv } from '../core/launcher';

export interface DoctorReport {
  ok?: boolean;
  python?: { version?: string; executable?: string };
  riemannlora?: string | null;
  required?: Record<string, string | null>;
  optional?: Record<string, { installed: boolean; version: string | null; needed_for: string }>;
  devices?: { type: string; name?: string; memory_bytes?: number | null }[];
  install_hints?: string[];
  torch?: { installed: boolean; version?: string; cuda_available?: boolean; error?: string };
}

export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  severity: Severity;
  message: string;
  /** A shell command that fixes it (offered as "Copy Command" / "Run in Terminal"). */
  command?: string;
  /** The interpreter itself is the problem: offer "Select Python Interpreter…". */
  selectInterpreter?: boolean;
}

export interface DoctorRun {
  report?: DoctorReport;
  /** Launch or parse failure. */
  failure?: { code: string | number | null; stderr: string; message: string };
}

export function runDoctor(python: string, nativeWorkerDir: string, timeoutMs = 60_000): Promise<DoctorRun> {
  return new Promise((resolve) => {
    execFile(
      python,
      ['-m', 'riemannlora.worker', 'doctor'],
      { cwd: workerCwd({ nativeWorkerDir }), env: { ...process.env, ...workerEnv({ nativeWorkerDir }) }, timeout: timeoutMs, maxBuffer: 4 << 20 },
      (err, stdout, stderr) => {
        if (err && !stdout.trim()) {
          resolve({ failure: { code: (err as NodeJS.ErrnoException).code ?? (err as { code?: number }).code ?? null, stderr: String(stderr), message: err.message } });
          return;
        }
        try {
          resolve({ report: JSON.parse(stdout) as DoctorReport });
        } catch (e) {
          resolve({ failure: { code: null, stderr: `${stderr}\n${stdout}`.trim(), message: `doctor printed something that is not JSON: ${(e as Error).message}` } });
        }
      },
    );
  });
}

/** Each problem as one actionable finding; an all-clear summary when there is none. */
export function findings(run: DoctorRun, python: string): Finding[] {
  if (run.failure) {
    const f = run.failure;
    if (f.code === 'ENOENT') return [{ severity: 'error', message: `Python was not found at "${python}".`, selectInterpreter: true }];
    if (/No module named ['"]?riemannlora/.test(f.stderr)) {
      return [{ severity: 'error', message: `The worker package riemannlora cannot be imported by ${python}: ${lastLine(f.stderr)}`, selectInterpreter: true }];
    }
    const missing = /No module named ['"]?([\w.]+)/.exec(f.stderr)?.[1];
    if (missing) {
      const pkg = missing.split('.')[0]!;
      return [{ severity: 'error', message: `${python} lacks the Python package "${pkg}" the worker needs.`, command: `"${python}" -m pip install ${pkg}`, selectInterpreter: true }];
    }
    return [{ severity: 'error', message: `The environment check failed with ${python}: ${lastLine(f.stderr) || f.message}`, selectInterpreter: true }];
  }
  const r = run.report ?? {};
  const out: Finding[] = [];
  if (r.torch && !r.torch.installed) {
    out.push({ severity: 'error', message: `PyTorch is not installed in ${python}.`, command: `"${python}" -m pip install torch`, selectInterpreter: true });
  }
  for (const [name, version] of Object.entries(r.required ?? {})) {
    if (version === null && name !== 'torch') out.push({ severity: 'error', message: `Required package "${name}" is missing in ${python}.`, command: `"${python}" -m pip install ${name}` });
  }
  for (const hint of r.install_hints ?? []) {
    const [cmd, why] = hint.split(/\s+#\s+/, 2);
    if (!cmd) continue;
    if (/required/.test(why ?? '')) continue; // reported above
    const isPip = /^pip install /.test(cmd);
    out.push({
      severity: 'info',
      message: isPip ? `Optional: ${why ?? cmd}.` : cmd,
      command: isPip ? `"${python}" -m ${cmd}` : undefined,
    });
  }
  const devices = (r.devices ?? []).map((d) => d.name ? `${d.type} (${d.name})` : d.type).join(', ');
  const summary = `Python ${r.python?.version ?? '?'}, torch ${r.torch?.version ?? '?'}, riemannlora ${r.riemannlora ?? '(from the extension)'}; devices: ${devices || 'none'}`;
  if (!out.some((f) => f.severity === 'error')) out.unshift({ severity: 'info', message: `Environment OK: ${summary}.` });
  return out;
}

function lastLine(s: string): string {
  return s.trim().split('\n').pop()?.trim() ?? '';
}
