// Extension-host integration tests: bundled by test/e2e/host.e2e.test.ts and run inside the real
// extension host of code-server (extensionTestsPath), with the real worker. The host exits 0 even when
// run() throws, so every result goes to the JSON file named by RLORA_HOST_RESULTS and the driver checks it.
// VS Code ends the extension host once run() returns: run() waits until the driver has checked the tabs
// that the suite leaves open and says so by creating the file named by RLORA_HOST_RELEASE.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { editConfigFile } from '../../../src/configure/flows';
import type { Engine } from '../../../src/core/engine';
import type { RunInfo } from '../../../src/core/runStore';
import { findings, runDoctor } from '../../../src/environment/doctor';

type Result = { name: string; ok: boolean; error?: string; ms: number };

function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

async function until<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function run(): Promise<void> {
  const out = process.env.RLORA_HOST_RESULTS;
  const python = process.env.RLORA_PYTHON ?? 'python3';
  const results: Result[] = [];
  const test = async (name: string, fn: () => Promise<void>) => {
    const t0 = Date.now();
    try {
      await fn();
      results.push({ name, ok: true, ms: Date.now() - t0 });
    } catch (err) {
      results.push({ name, ok: false, error: (err as Error).stack ?? String(err), ms: Date.now() - t0 });
    }
  };
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
  const ext = vscode.extensions.all.find((e) => e.packageJSON?.name === 'riemannlora-lab');
  let engine: Engine | undefined;

  await test('the extension activates and exposes its engine', async () => {
    assert(ext, 'extension riemannlora-lab is not loaded');
    const api = (await ext.activate()) as { engine: () => Engine | undefined };
    engine = api.engine();
    assert(engine, 'no engine: a folder is open, so there must be one');
    assert(folder && engine.root === join(folder.fsPath, '.rlora-runs'), `runs root ${engine.root}`);
  });

  await test('every palette command is registered and titled "RiemannLoRA: …"', async () => {
    const all = await vscode.commands.getCommands(true);
    const contributed = (ext!.packageJSON.contributes.commands as { command: string; title: string; category: string }[]).filter(
      (c) => !['riemannlora.refresh', 'riemannlora.openConfig'].includes(c.command),
    );
    const titles = contributed.map((c) => `${c.category}: ${c.title}`);
    for (const t of [
      'New Experiment…', 'Configure Rank…', 'Configure Initialization…', 'Configure Optimizer…', 'Start Run', 'Stop Run', 'Resume Run',
      'Delete Run', 'Compare with LoRA Baselines', 'Open Run Chart', 'Open Comparison', 'Export Adapter (PEFT)…', 'Show Run Log',
      'Select Python Interpreter…', 'Check Environment', 'Run Demo Comparison',
    ]) {
      assert(titles.includes(`RiemannLoRA: ${t}`), `missing palette title "RiemannLoRA: ${t}"`);
    }
    for (const c of contributed) assert(all.includes(c.command), `command ${c.command} is contributed but not registered`);
  });

  await test('Start Run on a *.rlora.json runs the real worker to completion', async () => {
    const uri = vscode.Uri.joinPath(folder!, 'quick.rlora.json');
    const info = (await vscode.commands.executeCommand('riemannlora.startRun', uri)) as RunInfo | undefined;
    assert(info?.key, 'startRun returned no run');
    assert(info.experiment === 'quick', `experiment id from the file name, got ${info.experiment}`);
    const done = await engine!.wait(info.key);
    assert(done.state === 'completed', `state ${done.state}: ${JSON.stringify(done.last_error)}`);
    assert(done.summary && typeof done.summary.final_loss_smoothed === 'number', 'a completed run has a smoothed final loss');
    const snap = engine!.snapshot(info.key);
    assert(snap.train.length === 30, `30 train points expected, got ${snap.train.length}`);
  });

  await test('a queued run that came with the workspace is not started by itself; started by hand, no Python file of its folder is imported', async () => {
    // Activation is long over (the previous test trained a run meanwhile): it decided to leave this one.
    const key = 'shipped/run1';
    const info = engine!.get(key);
    assert(info?.state === 'queued', `the shipped run must still be queued, is ${info?.state}`);
    // The user starts it (the tree's Start Run on a queued run).
    await vscode.commands.executeCommand('riemannlora.startRun', { kind: 'run', info });
    const done = await engine!.wait(key);
    assert(done.state === 'completed', `state ${done.state}: ${JSON.stringify(done.last_error)}`);
    const marker = join(info.dir, 'PWNED');
    if (existsSync(marker)) throw new Error(`${readFileSync(marker, 'utf8')}: a run folder's Python must never be imported`);
  });

  await test('configuration edits are validated against the schema before they are written', async () => {
    const uri = vscode.Uri.joinPath(folder!, 'quick.rlora.json');
    assert(await editConfigFile(uri, (c) => (c.adapter.rank = 16)), 'a valid edit is applied');
    assert(JSON.parse(readFileSync(uri.fsPath, 'utf8')).adapter.rank === 16, 'rank 16 written to the file');
    const refused = await editConfigFile(uri, (c) => (c.adapter.rank = 0));
    assert(!refused, 'rank 0 must be refused');
    assert(JSON.parse(readFileSync(uri.fsPath, 'utf8')).adapter.rank === 16, 'a refused edit leaves the file as it was');
  });

  await test('*.rlora.json files get schema diagnostics (jsonValidation)', async () => {
    const uri = vscode.Uri.joinPath(folder!, 'broken.rlora.json');
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc);
    const diags = await until('schema diagnostics', () => {
      const d = vscode.languages.getDiagnostics(uri);
      return d.length ? d : undefined;
    }, 30_000);
    assert(diags.some((d) => /riemannion|Value is not accepted|not accepted/i.test(d.message)), `diagnostics: ${diags.map((d) => d.message).join(' | ')}`);
  });

  await test('*.rlora.json files get the rules between fields as diagnostics, at the value (schema/rules.json)', async () => {
    const uri = vscode.Uri.joinPath(folder!, 'rules.rlora.json');
    const text = JSON.stringify({ task: { kind: 'synthetic-lowrank', synthetic: { width: 8 } }, adapter: { rank: 16 }, method: { init: 'lora', optimizer: 'adamw' }, train: { steps: 4 } }, null, 2);
    writeFileSync(uri.fsPath, text);
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc);
    const diags = await until('rule diagnostics', () => {
      const d = vscode.languages.getDiagnostics(uri).filter((x) => x.source === 'RiemannLoRA');
      return d.length ? d : undefined;
    }, 30_000);
    assert(diags.length === 1 && diags[0]!.message === '/adapter/rank: must be <= the synthetic width (8) (got 16)', `diagnostics: ${diags.map((d) => d.message).join(' | ')}`);
    assert(doc.getText(diags[0]!.range) === '16', `underlined: ${doc.getText(diags[0]!.range)}`);
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  });

  await test('Check Environment: doctor findings for the real interpreter and for a missing one', async () => {
    const ext2 = ext!.extensionUri.fsPath;
    const ok = findings(await runDoctor(python, join(ext2, 'native-worker')), python);
    assert(ok[0]?.message.startsWith('Environment OK'), `first finding: ${JSON.stringify(ok[0])}`);
    const missing = findings(await runDoctor('/nonexistent/python3', join(ext2, 'native-worker')), '/nonexistent/python3');
    assert(missing.length === 1 && missing[0]!.severity === 'error' && missing[0]!.selectInterpreter, JSON.stringify(missing));
    assert(/was not found/.test(missing[0]!.message), missing[0]!.message);
  });

  await test('the run chart and the comparison open as webview panels', async () => {
    const key = engine!.list()[0]!.key;
    await vscode.commands.executeCommand('riemannlora.openRunChart', key);
    await until('a run panel tab', () =>
      vscode.window.tabGroups.all.flatMap((g) => g.tabs).find((t) => t.input instanceof vscode.TabInputWebview && t.input.viewType.endsWith('riemannlora.run')),
    );
    await vscode.commands.executeCommand('riemannlora.openComparison', key.split('/')[0]);
    await until('a comparison panel tab', () =>
      vscode.window.tabGroups.all.flatMap((g) => g.tabs).find((t) => t.input instanceof vscode.TabInputWebview && t.input.viewType.endsWith('riemannlora.compare')),
    );
  });

  await test('Start Run reuses one run tab (riemannlora.runTab.openOnStart); Open Run Chart tabs are kept; tabs add no engine listeners', async () => {
    const api = (await ext!.activate()) as { runTabs: () => string[] };
    const runTabs = () => vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => t.input instanceof vscode.TabInputWebview && t.input.viewType.endsWith('riemannlora.run'));
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    await until('no run tab open', () => (runTabs().length === 0 && api.runTabs().length === 0 ? true : undefined));
    const events = ['metrics-appended', 'run-updated', 'run-finished', 'run-added', 'run-removed'] as const;
    const listeners = () => events.map((e) => engine!.listenerCount(e)).join(',');
    const before = listeners();
    const uri = vscode.Uri.joinPath(folder!, 'quick.rlora.json');
    const start = async () => {
      const info = (await vscode.commands.executeCommand('riemannlora.startRun', uri)) as RunInfo | undefined;
      assert(info?.key, 'startRun returned no run');
      return info;
    };
    const shown = (keys: string[]) => until(`run tabs showing ${keys.join(', ')}`, () => {
      const open = api.runTabs();
      return open.length === keys.length && keys.every((k) => open.includes(k)) && runTabs().length === keys.length ? true : undefined;
    });
    const a = await start();
    await shown([a.key]);
    const b = await start(); // the default, reuse: the same tab now shows b
    await shown([b.key]);
    await vscode.commands.executeCommand('riemannlora.openRunChart', a.key); // a's own tab, kept for it
    await shown([a.key, b.key]);
    const c = await start(); // takes over the start tab (b's), not a's
    await shown([a.key, c.key]);
    await vscode.commands.executeCommand('riemannlora.openComparison', a.experiment);
    // a listener per panel and event used to pass Node's limit of 10 (MaxListenersExceededWarning) at ~10 tabs
    assert(listeners() === before, `engine listeners grew with the tabs: ${before} -> ${listeners()}`);
    const setting = vscode.workspace.getConfiguration('riemannlora');
    try {
      await setting.update('runTab.openOnStart', 'new', vscode.ConfigurationTarget.Workspace);
      const d = await start();
      await shown([a.key, c.key, d.key]);
      await setting.update('runTab.openOnStart', 'never', vscode.ConfigurationTarget.Workspace);
      const e = await start();
      await shown([a.key, c.key, d.key]);
      for (const r of [a, b, c, d, e]) {
        const done = await engine!.wait(r.key);
        assert(done.state === 'completed', `${r.key}: ${done.state}`);
      }
      assert(api.runTabs().length === 3 && !api.runTabs().includes(e.key), `tabs: ${api.runTabs().join(', ')}`);
    } finally {
      await setting.update('runTab.openOnStart', undefined, vscode.ConfigurationTarget.Workspace);
    }
  });

  await test('a failing run ends failed with its error; its run tab is left open for the driver', async () => {
    const uri = vscode.Uri.joinPath(folder!, 'missing.rlora.json');
    const info = (await vscode.commands.executeCommand('riemannlora.startRun', uri)) as RunInfo | undefined;
    assert(info?.key, 'startRun returned no run');
    const done = await engine!.wait(info.key);
    assert(done.state === 'failed', `state ${done.state}`);
    const snap = engine!.snapshot(info.key);
    const said = [JSON.stringify(done.last_error), snap.logTail, ...snap.events.map((e) => JSON.stringify(e))].join('\n');
    assert(/nonexistent/.test(said), `the failure names the missing path: ${said.slice(0, 500)}`);
    await vscode.commands.executeCommand('riemannlora.openRunChart', info.key);
  });

  await test('a run whose directory cannot be read (the driver opens its tab)', async () => {
    // A copy of the completed run (not watched by this engine, like a run of an earlier window) whose
    // events.jsonl cannot be read: a directory in its place fails reads with EISDIR even as root.
    const source = engine!.list().find((r) => r.state === 'completed');
    assert(source, 'a completed run to copy');
    const key = `${source.experiment}/unreadable-copy`;
    const dir = engine!.store.runDir(key);
    cpSync(source.dir, dir, { recursive: true });
    engine!.store.updateCard(key, (c) => (c.label = 'unreadable copy'));
    rmSync(join(dir, 'events.jsonl'));
    mkdirSync(join(dir, 'events.jsonl'));
    assert(engine!.get(key)?.label === 'unreadable copy', 'the copy is listed as a run');
    assert(engine!.store.problem(key) === undefined, 'the directory itself can be listed');
  });

  if (out) writeFileSync(out, JSON.stringify(results, null, 2));
  const release = process.env.RLORA_HOST_RELEASE;
  // Not a timing assumption: the driver releases the host as soon as it has checked; the bound only
  // keeps a dead driver from leaving the host up for ever.
  if (release) await until('the driver to release the extension host', () => existsSync(release), 600_000).catch(() => undefined);
}
