// Quick-pick flows that write an experiment's *.rlora.json: a new experiment (name, task, rank,
// initialization, optimizer, learning rate, steps, batch size) and one-field edits (rank, initialization, optimizer). Edits go through a
// WorkspaceEdit (undoable, respects an open dirty editor) and are validated against the shared schema
// before anything is written.
import * as vscode from 'vscode';
import { checkConfig, ConfigError, parseConfigText, withDefaults, type RunConfig } from '../core/config';
import { defaultLr, INITS, isRiemannian, lrSearchRange, OPTIMIZERS, takes } from '../core/catalogue';
import { CONFIG_GLOB } from '../experiments/tree';

type Method = RunConfig['method'];

const RANKS = [1, 2, 4, 8, 16, 32, 64, 128];

function settings() {
  return vscode.workspace.getConfiguration('riemannlora');
}

/**
 * The rank: the usual ones, or any integer 1–4096 typed into the same box. A typed rank is offered as
 * itself (first, and the one Enter takes) instead of being filtered to a listed rank that contains its
 * digits; the current rank, else the default, is the highlighted one when the box opens. undefined when
 * cancelled.
 */
export async function pickRank(current?: number, title = 'Adapter rank r'): Promise<number | undefined> {
  type Item = vscode.QuickPickItem & { rank: number };
  const listed: Item[] = RANKS.map((r) => ({ label: String(r), rank: r, description: r === current ? 'current' : undefined }));
  const start = current ?? settings().get<number>('defaults.rank', 8);
  const qp = vscode.window.createQuickPick<Item>();
  qp.title = title;
  qp.placeholder = `pick a rank or type any from 1 to 4096 (current: ${current ?? 'none'})`;
  const show = (value: string) => {
    const typed = value.trim();
    const isRank = /^\d+$/.test(typed) && Number(typed) >= 1 && Number(typed) <= 4096;
    const same = listed.find((i) => i.rank === Number(typed));
    if (isRank && !same) {
      const item: Item = { label: typed, rank: Number(typed), description: Number(typed) === current ? 'current' : 'typed', alwaysShow: true };
      qp.items = [item, ...listed];
      qp.activeItems = [item];
    } else {
      qp.items = listed;
      const active = isRank ? same : typed === '' ? listed.find((i) => i.rank === start) : undefined;
      if (active) qp.activeItems = [active];
    }
  };
  // A rank outside the list (e.g. 12 from a config) is offered and highlighted as it is.
  show(RANKS.includes(start) ? '' : String(start));
  return new Promise((resolve) => {
    let picked: number | undefined;
    qp.onDidChangeValue(show);
    qp.onDidAccept(() => {
      const item = qp.selectedItems[0] ?? qp.activeItems[0];
      if (!item) return; // nothing that is a rank: the box stays open
      picked = item.rank;
      qp.hide();
    });
    qp.onDidHide(() => {
      qp.dispose();
      resolve(picked);
    });
    qp.show();
  });
}

export async function pickInit(current?: Method['init'], title = 'Initialization'): Promise<Method['init'] | undefined> {
  const pick = await vscode.window.showQuickPick(
    INITS.map((i) => ({ label: i.id, detail: i.detail, description: i.id === current ? 'current' : undefined })),
    { title, placeHolder: 'how the adapter starts' },
  );
  return pick?.label as Method['init'] | undefined;
}

export async function pickOptimizer(current?: Method['optimizer'], title = 'Optimizer'): Promise<Method['optimizer'] | undefined> {
  const pick = await vscode.window.showQuickPick(
    [
      { label: 'Riemannian (on the fixed-rank manifold)', kind: vscode.QuickPickItemKind.Separator },
      ...OPTIMIZERS.filter((o) => isRiemannian(o.id)).map((o) => ({ label: o.id, detail: o.detail, description: o.id === current ? 'current' : undefined })),
      { label: 'LoRA baselines (on the factors)', kind: vscode.QuickPickItemKind.Separator },
      ...OPTIMIZERS.filter((o) => !isRiemannian(o.id)).map((o) => ({ label: o.id, detail: o.detail, description: o.id === current ? 'current' : undefined })),
    ],
    { title },
  );
  return pick?.label as Method['optimizer'] | undefined;
}

/** The config a new experiment starts from (settings' defaults). */
export function defaultConfig(name: string, task: RunConfig['task']['kind'], extra: Partial<RunConfig['task']> = {}): RunConfig {
  const s = settings();
  const config: RunConfig = {
    name,
    task: { kind: task, ...extra },
    adapter: { rank: s.get('defaults.rank', 8) },
    method: { init: s.get('defaults.init', 'loi') as Method['init'], optimizer: s.get('defaults.optimizer', 'riemannion') as Method['optimizer'] },
    train: { steps: s.get('defaults.steps', 200), eval_interval: 50, seed: 0 },
    output: { export_adapter: true },
  };
  if (task === 'synthetic-lowrank') config.task.synthetic = { width: 64, depth: 3, target_rank: 4 };
  return config;
}

/** The steps of New Experiment…, for the "(n/N)" in every title. */
const NEW_STEPS = 8;

/** An input box for a number: the value shown, checked as typed; undefined when cancelled. */
async function askNumber(o: { title: string; prompt: string; value: number; check: (v: number) => string | undefined }): Promise<number | undefined> {
  const text = await vscode.window.showInputBox({
    title: o.title,
    prompt: o.prompt,
    value: String(o.value),
    validateInput: (v) => (v.trim() === '' || Number.isNaN(Number(v)) ? 'a number' : o.check(Number(v))),
  });
  return text === undefined ? undefined : Number(text);
}

/** New Experiment…: asks name, task (and model/data for causal-lm), rank, init, optimizer, learning rate, steps and batch size; writes the file. */
export async function newExperiment(): Promise<vscode.Uri | undefined> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) {
    void vscode.window.showErrorMessage('RiemannLoRA: open a folder first: experiments are *.rlora.json files in the workspace.');
    return undefined;
  }
  const name = await vscode.window.showInputBox({
    title: `New Experiment (1/${NEW_STEPS}): name`,
    prompt: 'Also the file name: <name>.rlora.json in the workspace folder',
    value: 'my-experiment',
    validateInput: (v) => (/^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$/.test(v) ? undefined : "letters, digits, '.', '_' or '-', starting with a letter or digit"),
  });
  if (!name) return undefined;
  const uri = vscode.Uri.joinPath(folder.uri, `${name}.rlora.json`);
  try {
    await vscode.workspace.fs.stat(uri);
    void vscode.window.showErrorMessage(`RiemannLoRA: ${vscode.workspace.asRelativePath(uri)} already exists: pick another name.`);
    return undefined;
  } catch {
    /* free */
  }
  const taskPick = await vscode.window.showQuickPick(
    [
      { label: 'builtin-default', detail: 'The small pretrained model and fine-tuning set shipped with the project (CPU, minutes)' },
      { label: 'synthetic-lowrank', detail: 'A frozen random network with a hidden low-rank change (seconds)' },
      { label: 'causal-lm', detail: 'Your Hugging Face causal LM (local folder) and data (.jsonl/.json/.txt)' },
    ],
    { title: `New Experiment (2/${NEW_STEPS}): task` },
  );
  if (!taskPick) return undefined;
  const task = taskPick.label as RunConfig['task']['kind'];
  const extra: Partial<RunConfig['task']> = {};
  if (task === 'causal-lm') {
    const model = await vscode.window.showInputBox({ title: 'Model', prompt: 'Local directory of a Hugging Face model (or a hub id, needs network)', ignoreFocusOut: true });
    if (!model) return undefined;
    const data = await vscode.window.showInputBox({ title: 'Data', prompt: 'Local .jsonl/.json/.txt file (or a datasets hub id)', ignoreFocusOut: true });
    if (!data) return undefined;
    Object.assign(extra, { model, data });
  }
  const config = defaultConfig(name, task, extra);
  const rank = await pickRank(config.adapter.rank, `New Experiment (3/${NEW_STEPS}): adapter rank r`);
  if (rank === undefined) return undefined;
  config.adapter.rank = rank;
  const init = await pickInit(config.method.init, `New Experiment (4/${NEW_STEPS}): initialization`);
  if (!init) return undefined;
  config.method.init = init;
  const optimizer = await pickOptimizer(config.method.optimizer, `New Experiment (5/${NEW_STEPS}): optimizer`);
  if (!optimizer) return undefined;
  config.method.optimizer = optimizer;
  // The learning rate, steps and batch size: the catalogue's default rate is shown (schema/methods.json);
  // a fair comparison searches its own rates (docs/comparisons.md), this one is for single runs.
  const [lo, hi] = lrSearchRange(optimizer, config.task.kind);
  const lr = await askNumber({
    title: `New Experiment (6/${NEW_STEPS}): learning rate`,
    prompt: `${optimizer}'s default is ${defaultLr(optimizer)} (the paper's value for Llama-3-8B where published); a fair comparison searches ${lo}–${hi} itself`,
    value: defaultLr(optimizer),
    check: (v) => (v > 0 && Number.isFinite(v) ? undefined : 'a positive number, e.g. 2e-4'),
  });
  if (lr === undefined) return undefined;
  config.method.lr = lr;
  const steps = await askNumber({
    title: `New Experiment (7/${NEW_STEPS}): training steps`,
    prompt: 'Optimizer steps of one run',
    value: config.train.steps,
    check: (v) => (Number.isInteger(v) && v >= 1 ? undefined : 'a positive integer'),
  });
  if (steps === undefined) return undefined;
  config.train.steps = steps;
  const batch = await askNumber({
    title: `New Experiment (8/${NEW_STEPS}): batch size`,
    prompt: 'Examples per micro-batch (train.batch_size; under torchrun the global batch)',
    value: withDefaults(config).train.batch_size ?? 8,
    check: (v) => (Number.isInteger(v) && v >= 1 ? undefined : 'a positive integer'),
  });
  if (batch === undefined) return undefined;
  config.train.batch_size = batch;
  try {
    checkConfig(config, uri.fsPath);
  } catch (err) {
    void vscode.window.showErrorMessage(`RiemannLoRA: ${(err as Error).message}`);
    return undefined;
  }
  // Written beside it and renamed into place: the tree's watcher, diagnostics and anyone reading the file
  // see either no file or the whole of it, never an empty or half-written one.
  const partial = uri.with({ path: `${uri.path}.partial` });
  await vscode.workspace.fs.writeFile(partial, Buffer.from(`${JSON.stringify(config, null, 2)}\n`));
  await vscode.workspace.fs.rename(partial, uri, { overwrite: true });
  await vscode.window.showTextDocument(uri);
  return uri;
}

/** The config file a command applies to: the argument, the active *.rlora.json editor, or a pick. */
export async function chooseConfigFile(arg?: vscode.Uri): Promise<vscode.Uri | undefined> {
  if (arg) return arg;
  const active = vscode.window.activeTextEditor?.document.uri;
  if (active && /\.rlora\.json$/i.test(active.fsPath)) return active;
  const files = await vscode.workspace.findFiles(CONFIG_GLOB, '**/{node_modules,.rlora-runs}/**', 200);
  if (files.length === 1) return files[0];
  if (!files.length) {
    const create = await vscode.window.showInformationMessage('RiemannLoRA: no *.rlora.json experiment in this workspace.', 'New Experiment…');
    if (create) return newExperiment();
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(
    files.map((f) => ({ label: vscode.workspace.asRelativePath(f), uri: f })),
    { title: 'Experiment configuration' },
  );
  return pick?.uri;
}

/** Reads a config file (from the open editor when there is one). Throws ConfigError with field names. */
export async function readConfigFile(uri: vscode.Uri): Promise<RunConfig> {
  const doc = await vscode.workspace.openTextDocument(uri);
  return parseConfigText(doc.getText(), uri.fsPath);
}

/** Applies `change` to the config in `uri`, validates, and replaces the document's text. */
export async function editConfigFile(uri: vscode.Uri, change: (c: RunConfig) => void): Promise<boolean> {
  const doc = await vscode.workspace.openTextDocument(uri);
  let config: RunConfig;
  try {
    config = JSON.parse(doc.getText()) as RunConfig;
  } catch (err) {
    void vscode.window.showErrorMessage(`RiemannLoRA: ${vscode.workspace.asRelativePath(uri)} is not valid JSON (${(err as Error).message}); fix it first.`);
    return false;
  }
  change(config);
  try {
    checkConfig(config, uri.fsPath);
  } catch (err) {
    const msg = err instanceof ConfigError ? err.message : String(err);
    void vscode.window.showErrorMessage(`RiemannLoRA: that change makes the config invalid: ${msg}`);
    return false;
  }
  const edit = new vscode.WorkspaceEdit();
  edit.replace(uri, new vscode.Range(doc.positionAt(0), doc.positionAt(doc.getText().length)), `${JSON.stringify(config, null, 2)}\n`);
  const ok = await vscode.workspace.applyEdit(edit);
  if (ok) await doc.save();
  return ok;
}

export async function configureRank(arg?: vscode.Uri): Promise<void> {
  const uri = await chooseConfigFile(arg);
  if (!uri) return;
  const current = await readConfigFile(uri).catch(() => undefined);
  const rank = await pickRank(current?.adapter.rank);
  if (rank !== undefined) await editConfigFile(uri, (c) => (c.adapter.rank = rank));
}

export async function configureInit(arg?: vscode.Uri): Promise<void> {
  const uri = await chooseConfigFile(arg);
  if (!uri) return;
  const current = await readConfigFile(uri).catch(() => undefined);
  const init = await pickInit(current?.method.init);
  if (init) await editConfigFile(uri, (c) => (c.method.init = init));
}

export async function configureOptimizer(arg?: vscode.Uri): Promise<void> {
  const uri = await chooseConfigFile(arg);
  if (!uri) return;
  const current = await readConfigFile(uri).catch(() => undefined);
  const optimizer = await pickOptimizer(current?.method.optimizer);
  if (!optimizer) return;
  await editConfigFile(uri, (c) => {
    c.method.optimizer = optimizer;
    // The old optimizer's learning rate and the options the new one does not take would be ignored or
    // refused: drop them with it (the catalogue says which options an optimizer takes).
    delete c.method.lr;
    for (const key of ['momentum', 'betas', 'momentum_store', 'loraplus_ratio'] as const) {
      if (!takes(optimizer, key)) delete c.method[key];
    }
  });
}
