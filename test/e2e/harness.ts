// The end-to-end harness: a real VS Code (code-server 4.100.3, built by scripts/setup-code-server.sh) in
// Debian's Chromium driven by playwright-core. Recipe: docs/architecture.md "A real VS Code offline".
//
// Inputs (the suite FAILS, never skips, when one is missing):
//   RLORA_E2E_HARNESS  the harness folder (default ~/.cache/riemannlora-lab/e2e-harness-4.100.3)
//   RLORA_PYTHON       the Python that runs the worker (default <repo>/.venv/bin/python)
//   RLORA_CHROMIUM     the browser (default /usr/bin/chromium)
// Screenshots of every stage go to test-results/e2e/.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import type { Browser, FrameLocator, Page } from 'playwright-core';

export const ROOT = resolve(__dirname, '..', '..');
export const SHOTS = join(ROOT, 'test-results', 'e2e');
const CS_VERSION = '4.100.3';

export interface Environment {
  harness: string;
  codeServer: string;
  python: string;
  chromium: string;
}

/** Where everything is; throws (the test fails) with the fix when something is missing. */
export function environment(): Environment {
  const harness =
    process.env.RLORA_E2E_HARNESS ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'riemannlora-lab', `e2e-harness-${CS_VERSION}`);
  const codeServer = join(harness, 'node_modules', '.bin', 'code-server');
  if (!existsSync(codeServer)) {
    throw new Error(`code-server not found at ${codeServer}: run \`bash scripts/setup-code-server.sh\` (or set RLORA_E2E_HARNESS)`);
  }
  const python = process.env.RLORA_PYTHON ?? join(ROOT, '.venv', 'bin', 'python');
  if (!existsSync(python)) throw new Error(`Python not found at ${python}: run \`npm run setup\` (or set RLORA_PYTHON)`);
  const chromium = process.env.RLORA_CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(chromium)) throw new Error(`Chromium not found at ${chromium}: apt-get install chromium (or set RLORA_CHROMIUM)`);
  return { harness, codeServer, python, chromium };
}

/** playwright-core from the harness folder (falls back to the repository's copy). */
function playwright(env: Environment): typeof import('playwright-core') {
  const req = createRequire(join(env.harness, 'package.json'));
  try {
    return req('playwright-core') as typeof import('playwright-core');
  } catch {
    return createRequire(__filename)('playwright-core') as typeof import('playwright-core');
  }
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; publisher: string; version: string };
export const EXTENSION_ID = `${pkg.publisher}.${pkg.name}`;

/**
 * Installs the built extension (dist/ must be current: the test runner builds first) the way a VSIX would
 * lay it out: an unpacked copy in the extensions folder, with the worker's Python sources and the schemas.
 */
export function installExtension(extensionsDir: string): string {
  if (!existsSync(join(ROOT, 'dist', 'extension.js'))) throw new Error('dist/extension.js is missing: run `node esbuild.mjs` first');
  const dest = join(extensionsDir, `${EXTENSION_ID}-${pkg.version}`);
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  for (const item of ['package.json', 'dist', 'media', 'schema', 'LICENSE', 'README.md']) {
    if (existsSync(join(ROOT, item))) cpSync(join(ROOT, item), join(dest, item), { recursive: true, filter: (src) => !src.endsWith('.map') && !src.endsWith('.vsix') });
  }
  cpSync(join(ROOT, 'native-worker', 'riemannlora'), join(dest, 'native-worker', 'riemannlora'), {
    recursive: true,
    filter: (src) => !src.includes('__pycache__') && !src.endsWith('.pyc'),
  });
  return dest;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

export interface SessionOptions {
  /** Files to create in the workspace (relative path → content). */
  files?: Record<string, string>;
  /** User settings on top of the defaults below. */
  settings?: Record<string, unknown>;
  /** false: Workspace Trust is on and the folder opens in Restricted Mode. */
  trusted?: boolean;
  /** Colour theme (default: Dark Modern). */
  theme?: string;
  /**
   * Extension-host tests (the test-electron equivalent): the extension is loaded as a development
   * extension from a copy and `run()` of this bundled module runs inside the extension host.
   */
  hostTests?: string;
  /** Extra environment for code-server and so for the extension host. */
  env?: Record<string, string>;
  /**
   * Install this VSIX with `code-server --install-extension` (what a user does) instead of copying the
   * built extension into the extensions folder.
   */
  vsix?: string;
}

export class Session {
  page!: Page;
  private browser!: Browser;
  private server!: ChildProcess;
  private serverLog = '';
  readonly dir: string;
  readonly workspace: string;
  readonly userData: string;
  readonly extensions: string;
  port = 0;
  readonly console: string[] = [];

  constructor(
    readonly env: Environment,
    readonly opts: SessionOptions = {},
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'rlora-e2e-'));
    this.workspace = join(this.dir, 'workspace');
    this.userData = join(this.dir, 'user-data');
    this.extensions = join(this.dir, 'extensions');
    mkdirSync(SHOTS, { recursive: true });
  }

  private devExtension = '';

  get url(): string {
    const base = `http://127.0.0.1:${this.port}/?folder=${encodeURIComponent(this.workspace)}`;
    if (!this.opts.hostTests) return base;
    const remote = (p: string) => `vscode-remote://127.0.0.1:${this.port}${p}`;
    const payload = [
      ['extensionDevelopmentPath', remote(this.devExtension)],
      ['extensionTestsPath', remote(this.opts.hostTests)],
    ];
    return `${base}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
  }

  async start(): Promise<void> {
    mkdirSync(this.workspace, { recursive: true });
    for (const [rel, content] of Object.entries(this.opts.files ?? {})) {
      mkdirSync(join(this.workspace, rel, '..'), { recursive: true });
      writeFileSync(join(this.workspace, rel), content);
    }
    mkdirSync(join(this.userData, 'User'), { recursive: true });
    const trusted = this.opts.trusted ?? true;
    const settings = {
      // Without this the Welcome page opens after F1 and closes the palette.
      'workbench.startupEditor': 'none',
      'workbench.colorTheme': this.opts.theme ?? 'Default Dark Modern',
      'workbench.tips.enabled': false,
      'extensions.ignoreRecommendations': true,
      'telemetry.telemetryLevel': 'off',
      'security.workspace.trust.startupPrompt': 'never',
      'security.workspace.trust.banner': 'always',
      'riemannlora.pythonPath': this.env.python,
      ...this.opts.settings,
    };
    writeFileSync(join(this.userData, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
    const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1', OMP_NUM_THREADS: '1', ...this.opts.env };
    delete env.PORT; // it overrides --bind-addr
    delete env.VSCODE_IPC_HOOK_CLI;
    if (this.opts.hostTests) {
      mkdirSync(join(this.dir, 'dev'), { recursive: true });
      this.devExtension = installExtension(join(this.dir, 'dev'));
    } else if (this.opts.vsix) {
      this.installVsix(this.opts.vsix, env);
    } else {
      installExtension(this.extensions);
    }
    this.port = await freePort();
    const args = [
      '--auth', 'none',
      '--bind-addr', `127.0.0.1:${this.port}`,
      '--disable-telemetry',
      '--disable-update-check',
      '--user-data-dir', this.userData,
      '--extensions-dir', this.extensions,
      ...(trusted ? ['--disable-workspace-trust'] : []),
      this.workspace,
    ];
    // Own process group: the whole server tree is killed at the end (workers launched by the extension are
    // detached on purpose and finish by themselves on the fast task).
    this.server = spawn(this.env.codeServer, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const onData = (b: Buffer) => {
      this.serverLog += b.toString();
      if (this.serverLog.length > 200_000) this.serverLog = this.serverLog.slice(-100_000);
    };
    this.server.stdout?.on('data', onData);
    this.server.stderr?.on('data', onData);
    await this.waitForServer();
    const pw = playwright(this.env);
    this.browser = await pw.chromium.launch({
      executablePath: this.env.chromium,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const context = await this.browser.newContext({ viewport: { width: 1400, height: 900 } });
    this.page = await context.newPage();
    // Console messages of the workbench and of the webviews (CSP violations show up here).
    this.page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') this.console.push(m.text());
    });
    await this.openWorkbench();
  }

  /** `code-server --install-extension FILE.vsix` into this session's extensions folder; throws with its output. */
  private installVsix(vsix: string, env: NodeJS.ProcessEnv): void {
    if (!existsSync(vsix)) throw new Error(`${vsix} is missing: run \`npm run package\` first`);
    const r = spawnSync(this.env.codeServer, ['--user-data-dir', this.userData, '--extensions-dir', this.extensions, '--install-extension', vsix], { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`code-server --install-extension ${vsix} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    this.installed = join(this.extensions, `${EXTENSION_ID}-${pkg.version}`);
    if (!existsSync(join(this.installed, 'package.json'))) throw new Error(`the VSIX did not install into ${this.installed}:\n${r.stdout}`);
  }

  /** Where the VSIX was installed (with `vsix`). */
  installed = '';

  private async waitForServer(): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (this.server.exitCode !== null) throw new Error(`code-server exited with ${this.server.exitCode}:\n${this.serverLog}`);
      try {
        const r = await fetch(`http://127.0.0.1:${this.port}/healthz`);
        if (r.ok) return;
      } catch {
        /* not yet listening */
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`code-server did not start within 60 s:\n${this.serverLog}`);
  }

  async openWorkbench(): Promise<void> {
    await this.page.goto(this.url);
    await this.page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
    if (!this.opts.hostTests) await this.waitForExtension();
  }

  /** Waits until our activity-bar container is there (the extension's contributions are loaded). */
  async waitForExtension(): Promise<void> {
    await this.page.locator('.activitybar [aria-label^="RiemannLoRA"]').first().waitFor({ timeout: 60_000 });
  }

  /**
   * Reloads the window the way a user does ("Developer: Reload Window"): VS Code then saves its state
   * (open editors, webview state) before the page goes, so the run tabs are restored. A bare page reload
   * would race the browser's unload against that save and sometimes lose the tabs.
   */
  async reload(): Promise<void> {
    const main = this.page.mainFrame();
    const navigated = this.page.waitForEvent('framenavigated', { predicate: (f) => f === main, timeout: 60_000 });
    await this.runCommand('Developer: Reload Window');
    await navigated;
    await this.page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
    await this.waitForExtension();
  }

  /** Runs a command by its palette title (e.g. "RiemannLoRA: Run Demo Comparison"). */
  async runCommand(title: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.page.keyboard.press('Escape');
        await this.page.keyboard.press('F1');
        const input = this.page.locator('.quick-input-widget input');
        await input.waitFor({ state: 'visible', timeout: 5_000 });
        await input.fill(`>${title}`);
        // Click the row whose label is exactly the title (fuzzy matching may rank another command first).
        const row = this.page.locator('.quick-input-list .monaco-list-row').filter({ has: this.page.getByText(title, { exact: true }) }).first();
        await row.waitFor({ timeout: 10_000 });
        await row.click();
        return;
      } catch (err) {
        if (attempt >= 1) throw err;
      }
    }
  }

  /** Picks the item labelled `label` in the open quick pick (e.g. a command's "Fair" / "Quick" choice). */
  async pick(label: string, timeoutMs = 20_000): Promise<void> {
    const row = this.page.locator('.quick-input-widget .quick-input-list .monaco-list-row').filter({ has: this.page.locator('.label-name', { hasText: new RegExp(`^${label}$`) }) }).first();
    await row.waitFor({ timeout: timeoutMs });
    await row.click();
  }

  /** The items of the palette list for a query (the palette is left open). */
  async paletteItems(query: string): Promise<string[]> {
    await this.page.keyboard.press('Escape');
    await this.page.keyboard.press('F1');
    const input = this.page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: 5_000 });
    await input.fill(`>${query}`);
    await this.page.locator('.quick-input-list .monaco-list-row').first().waitFor({ timeout: 10_000 });
    return this.page.locator('.quick-input-list .monaco-list-row .label-name').allInnerTexts();
  }

  /** Opens the RiemannLoRA view container (clicking its activity-bar icon when it is shown would hide it). */
  async showExperiments(): Promise<void> {
    const title = this.page.locator('.part.sidebar .composite.title').filter({ hasText: /RiemannLoRA/i, visible: true }).first();
    // Right after a (re)load the workbench may ignore the first click: check, click, wait, and retry.
    for (let attempt = 0; attempt < 4; attempt++) {
      if (await title.isVisible().catch(() => false)) return;
      await this.page.locator('.activitybar [aria-label^="RiemannLoRA"]').first().click();
      if (await title.waitFor({ timeout: 3_000 }).then(() => true, () => false)) return;
    }
    await title.waitFor({ timeout: 5_000 });
  }

  /** Switches the colour theme through "Preferences: Color Theme" (applies live). */
  async setTheme(name: string): Promise<void> {
    await this.runCommand('Preferences: Color Theme');
    const input = this.page.locator('.quick-input-widget input');
    await input.fill(name);
    await this.page.locator('.quick-input-list .monaco-list-row').filter({ has: this.page.getByText(name, { exact: true }) }).first().click({ timeout: 10_000 });
  }

  /** Tree rows of the Experiments view as their visible text (label + description). */
  experimentRows() {
    return this.page.locator('.pane:has(.pane-header [aria-label^="Experiments"]) .monaco-list-row');
  }

  /** The content frame of the active webview (two iframes deep). */
  webview(): FrameLocator {
    return this.page.frameLocator('iframe.webview.ready').last().frameLocator('#active-frame');
  }

  /** The content frame of the webview whose `selector` element has `text` (several panels may exist). */
  async webviewWhere(selector: string, text: string | RegExp, timeoutMs = 30_000): Promise<FrameLocator> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const n = await this.page.locator('iframe.webview.ready').count();
      for (let i = 0; i < n; i++) {
        const frame = this.page.frameLocator('iframe.webview.ready').nth(i).frameLocator('#active-frame');
        if ((await frame.locator(selector).filter({ hasText: text }).count().catch(() => 0)) > 0) {
          // Pin the frame by its unique name: an index shifts when another webview opens or is restored,
          // and later lookups would then land in a different panel.
          const name = await this.page.locator('iframe.webview.ready').nth(i).getAttribute('name').catch(() => null);
          return name ? this.page.frameLocator(`iframe.webview.ready[name="${name}"]`).frameLocator('#active-frame') : frame;
        }
      }
      if (Date.now() > end) throw new Error(`no webview with ${selector} matching ${text}`);
      await this.page.waitForTimeout(250);
    }
  }

  notifications() {
    return this.page.locator('.notifications-toasts .notification-toast');
  }

  /** Toasts that have finished sliding in (VS Code marks them when the transition ends): ready for a screenshot. */
  settledNotifications() {
    return this.page.locator('.notifications-toasts .notification-fade-in-done');
  }

  /** Rewrites user settings (code-server applies them live, e.g. the colour theme). */
  setUserSettings(change: Record<string, unknown>): void {
    const file = join(this.userData, 'User', 'settings.json');
    const current = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...current, ...change }, null, 2));
  }

  async shot(name: string): Promise<string> {
    const file = join(SHOTS, `${name}.png`);
    await this.page.screenshot({ path: file });
    return file;
  }

  get log(): string {
    return this.serverLog;
  }

  async stop(): Promise<void> {
    await this.browser?.close().catch(() => undefined);
    this.killWorkers();
    const server = this.server;
    if (server?.pid) {
      const exited = server.exitCode !== null ? Promise.resolve() : new Promise<void>((r) => server.once('exit', () => r()));
      try {
        process.kill(-server.pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      // Teardown only: a server that does not exit on SIGTERM is killed after a bounded wait.
      const bounded = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]);
      if (!bounded) {
        try {
          process.kill(-server.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
  }

  /**
   * Workers of this session's runs that are still going (a test that failed while a run was held, see
   * riemannlora/worker/hold.py) are killed: they run detached, so ending code-server does not end them.
   * Only processes whose command line is a riemannlora worker of this workspace are signalled.
   */
  killWorkers(): void {
    const root = join(this.workspace, '.rlora-runs');
    if (!existsSync(root)) return;
    for (const rel of readdirSync(root, { recursive: true }) as string[]) {
      if (!rel.endsWith('status.json')) continue;
      let pid: number | null | undefined;
      try {
        pid = (JSON.parse(readFileSync(join(root, rel), 'utf8')) as { pid?: number | null }).pid;
      } catch {
        continue; // not a status file this session's engine wrote
      }
      if (!pid || pid <= 1) continue;
      let cmdline: string;
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        continue; // gone
      }
      if (!cmdline.includes('riemannlora.worker') || !cmdline.includes(this.workspace)) continue;
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          /* not a group leader, or gone */
        }
      }
    }
  }

  /** Removes the temporary folders (keep them with RLORA_E2E_KEEP=1 to look at a failure). */
  cleanup(): void {
    if (!process.env.RLORA_E2E_KEEP) rmSync(this.dir, { recursive: true, force: true });
  }
}
