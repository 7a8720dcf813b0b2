// "Select Python Interpreter…" and "Check Environment".
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { requireTrust } from '../trust';
import { findings, runDoctor } from './doctor';
import { describeInterpreter, pythonFromExtension, resolveInterpreter } from './interpreter';

export async function selectInterpreter(log: vscode.LogOutputChannel): Promise<void> {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const current = await resolveInterpreter();
  const items: (vscode.QuickPickItem & { value?: string; browse?: boolean })[] = [];
  const fromExt = await pythonFromExtension();
  items.push({ label: '$(symbol-namespace) Use the Python extension’s interpreter', description: fromExt ?? 'the Python extension is not installed', value: '' });
  for (const rel of ['.venv/bin/python', 'venv/bin/python', '.venv/Scripts/python.exe']) {
    const p = folder ? join(folder, rel) : undefined;
    if (p && existsSync(p)) items.push({ label: `$(folder) ${rel}`, description: 'in this workspace', value: `\${workspaceFolder}/${rel}` });
  }
  items.push({ label: '$(terminal) python3', description: 'from PATH', value: 'python3' });
  items.push({ label: '$(file-directory) Browse…', browse: true });
  const pick = await vscode.window.showQuickPick(items, { title: 'RiemannLoRA: Python interpreter for the worker', placeHolder: `current: ${describeInterpreter(current)}` });
  if (!pick) return;
  let value = pick.value;
  if (pick.browse) {
    const file = await vscode.window.showOpenDialog({ canSelectMany: false, openLabel: 'Use this Python', title: 'Python interpreter' });
    if (!file?.[0]) return;
    value = file[0].fsPath;
  }
  if (value === undefined) return;
  // An interpreter is machine-specific: user (machine) settings, never the workspace's.
  await vscode.workspace.getConfiguration('riemannlora').update('pythonPath', value, vscode.ConfigurationTarget.Global);
  const now = await resolveInterpreter();
  log.info(`interpreter: ${describeInterpreter(now)}`);
  const check = await vscode.window.showInformationMessage(`RiemannLoRA: the worker will use ${describeInterpreter(now)}.`, 'Check Environment');
  if (check) void vscode.commands.executeCommand('riemannlora.checkEnvironment');
}

export async function checkEnvironment(nativeWorkerDir: string, log: vscode.LogOutputChannel): Promise<void> {
  if (!requireTrust('Checking the environment')) return;
  const interpreter = await resolveInterpreter();
  const run = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `RiemannLoRA: checking ${interpreter.path}…` },
    () => runDoctor(interpreter.path, nativeWorkerDir),
  );
  log.info(`doctor with ${describeInterpreter(interpreter)}: ${JSON.stringify(run.report ?? run.failure)}`);
  for (const f of findings(run, interpreter.path)) {
    const actions: string[] = [];
    if (f.command) actions.push('Copy Command', 'Run in Terminal');
    if (f.selectInterpreter) actions.push('Select Python Interpreter…');
    const show = f.severity === 'error' ? vscode.window.showErrorMessage : f.severity === 'warning' ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
    void show(`RiemannLoRA: ${f.message}`, ...actions).then(async (choice) => {
      if (choice === 'Copy Command' && f.command) await vscode.env.clipboard.writeText(f.command);
      else if (choice === 'Run in Terminal' && f.command) {
        const t = vscode.window.createTerminal('RiemannLoRA setup');
        t.show();
        t.sendText(f.command, false); // the user presses Enter: nothing installs without a look
      } else if (choice === 'Select Python Interpreter…') void vscode.commands.executeCommand('riemannlora.selectInterpreter');
    });
  }
}
