// "Select Python Interpreter…" and "Check Environment".
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { requireTrust } from '../trust';
import { type Finding, findings, runDoctor } from './doctor';
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
  showFindings(findings(run, interpreter.path), interpreter.path);
}

type FindingItem = vscode.QuickPickItem & { finding: Finding };
const COPY: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon('copy'), tooltip: 'Copy Command' };
const TERMINAL: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon('terminal'), tooltip: 'Run in Terminal' };

/**
 * One result for the whole check: a lone "Environment OK" is one notification; anything more is one list,
 * the problems first, each finding with its fix. Enter on a finding applies the fix (a command is typed
 * into a terminal for the user to confirm, never run; an interpreter problem opens the interpreter
 * picker); the buttons copy the command or type it into a terminal.
 */
function showFindings(list: Finding[], python: string): void {
  if (list.length === 1 && list[0]!.severity === 'info' && !list[0]!.command) {
    void vscode.window.showInformationMessage(`RiemannLoRA: ${list[0]!.message}`);
    return;
  }
  const rank = { error: 0, warning: 1, info: 2 } as const;
  const sorted = [...list].sort((a, b) => rank[a.severity] - rank[b.severity]);
  const problems = list.filter((f) => f.severity !== 'info').length;
  const qp = vscode.window.createQuickPick<FindingItem>();
  qp.title = `RiemannLoRA: environment of ${python}`;
  qp.placeholder = problems
    ? `${problems} problem${problems === 1 ? '' : 's'}: Enter on one applies its fix (a command goes to a terminal, where you confirm it)`
    : 'The worker has what it needs; optional extras below (Enter types the install command into a terminal)';
  qp.matchOnDetail = true;
  qp.items = sorted.map((f) => ({
    label: `$(${f.severity === 'error' ? 'error' : f.severity === 'warning' ? 'warning' : 'info'}) ${f.message}`,
    detail: f.command ? `fix: ${f.command}` : f.selectInterpreter ? 'fix: select another Python interpreter' : undefined,
    buttons: f.command ? [COPY, TERMINAL] : [],
    finding: f,
  }));
  const apply = async (f: Finding, how: 'copy' | 'terminal' | 'default') => {
    if (f.command && how === 'copy') {
      await vscode.env.clipboard.writeText(f.command);
      void vscode.window.setStatusBarMessage('RiemannLoRA: command copied', 3000);
    } else if (f.command) {
      qp.hide();
      const t = vscode.window.createTerminal('RiemannLoRA setup');
      t.show();
      t.sendText(f.command, false); // the user presses Enter: nothing installs without a look
    } else if (f.selectInterpreter) {
      qp.hide();
      void vscode.commands.executeCommand('riemannlora.selectInterpreter');
    }
  };
  qp.onDidTriggerItemButton((e) => void apply(e.item.finding, e.button === COPY ? 'copy' : 'terminal'));
  qp.onDidAccept(() => {
    const item = qp.selectedItems[0];
    if (!item || (!item.finding.command && !item.finding.selectInterpreter)) qp.hide();
    else void apply(item.finding, 'default');
  });
  qp.onDidHide(() => qp.dispose());
  qp.show();
}
