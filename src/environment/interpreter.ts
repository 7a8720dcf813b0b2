// Which Python runs the worker. Order: the `riemannlora.pythonPath` setting when the user set one (an
// explicit choice for this extension), else the Python extension's active interpreter when that extension
// is installed, else `python3` on PATH. In an untrusted workspace VS Code ignores workspace values of the
// setting (it is listed in restrictedConfigurations) and nothing is launched anyway.
import * as vscode from 'vscode';

export interface Interpreter {
  path: string;
  source: 'setting' | 'python-extension' | 'default';
}

interface PythonExtensionApi {
  environments?: { getActiveEnvironmentPath?(resource?: vscode.Uri): { path: string } | undefined };
  settings?: { getExecutionDetails?(resource?: vscode.Uri): { execCommand?: string[] } };
}

export const PYTHON_EXTENSION_ID = 'ms-python.python';

function expand(p: string): string {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? '';
  return p.replace(/\$\{workspaceFolder\}/g, folder).replace(/^~(?=$|\/)/, process.env.HOME ?? '~');
}

export async function pythonFromExtension(): Promise<string | undefined> {
  const ext = vscode.extensions.getExtension<PythonExtensionApi>(PYTHON_EXTENSION_ID);
  if (!ext) return undefined;
  try {
    const api = ext.isActive ? ext.exports : await ext.activate();
    const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
    const active = api?.environments?.getActiveEnvironmentPath?.(resource)?.path;
    if (active) return active;
    return api?.settings?.getExecutionDetails?.(resource)?.execCommand?.[0];
  } catch {
    return undefined;
  }
}

export async function resolveInterpreter(): Promise<Interpreter> {
  const setting = vscode.workspace.getConfiguration('riemannlora').get<string>('pythonPath', '').trim();
  if (setting) return { path: expand(setting), source: 'setting' };
  const fromExt = await pythonFromExtension();
  if (fromExt) return { path: fromExt, source: 'python-extension' };
  return { path: 'python3', source: 'default' };
}

export function describeInterpreter(i: Interpreter): string {
  const from = { setting: 'the riemannlora.pythonPath setting', 'python-extension': "the Python extension's active interpreter", default: 'the default (python3 on PATH)' }[i.source];
  return `${i.path} (from ${from})`;
}
