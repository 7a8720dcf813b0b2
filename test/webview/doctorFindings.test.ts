// "Check Environment": the worker's doctor report (or a launch failure) → one actionable finding each.
import { expect, test } from 'vitest';
import { findings } from '../../src/environment/doctor';

const PY = '/opt/py/bin/python';

test('a missing interpreter asks to select another', () => {
  const f = findings({ failure: { code: 'ENOENT', stderr: '', message: 'spawn ENOENT' } }, PY);
  expect(f).toEqual([expect.objectContaining({ severity: 'error', selectInterpreter: true })]);
  expect(f[0]!.message).toContain(PY);
});

test('a missing module becomes a pip command for that interpreter', () => {
  const f = findings({ failure: { code: 1, stderr: "Traceback…\nModuleNotFoundError: No module named 'jsonschema'", message: 'exit 1' } }, PY);
  expect(f[0]).toMatchObject({ severity: 'error', command: `"${PY}" -m pip install jsonschema` });
});

test('no torch is an error with its install command; optional packages are hints', () => {
  const f = findings(
    {
      report: {
        ok: false,
        python: { version: '3.11.7' },
        required: { torch: null, numpy: '2.0', jsonschema: '4', safetensors: '0.4' },
        torch: { installed: false, error: 'No module named torch' },
        install_hints: ['pip install torch  # required (https://pytorch.org for CUDA builds)', 'pip install "peft>=0.12"  # loading exported adapters'],
      },
    },
    PY,
  );
  expect(f[0]).toMatchObject({ severity: 'error', command: `"${PY}" -m pip install torch` });
  expect(f.some((x) => x.severity === 'info' && x.command === `"${PY}" -m pip install "peft>=0.12"`)).toBe(true);
  expect(f.some((x) => x.message.startsWith('Environment OK'))).toBe(false);
});

test('a healthy report says so with versions and devices', () => {
  const f = findings(
    {
      report: {
        ok: true,
        python: { version: '3.11.7' },
        riemannlora: '0.1.0',
        required: { torch: '2.13.0', numpy: '2', jsonschema: '4', safetensors: '0.8' },
        torch: { installed: true, version: '2.13.0+cpu' },
        devices: [{ type: 'cuda', name: 'H200' }, { type: 'cpu', name: 'x86_64' }],
        install_hints: [],
      },
    },
    PY,
  );
  expect(f).toHaveLength(1);
  expect(f[0]!.message).toBe('Environment OK: Python 3.11.7, torch 2.13.0+cpu, riemannlora 0.1.0; devices: cuda (H200), cpu (x86_64).');
});
