// Bundles the TypeScript benchmarks with esbuild into node_modules/.cache/rlora-bench/ (ignored by git):
//   pipeline.cjs  (node)    — engine parser, series, message batching, comparison open
//   chart.js      (browser) — the webview's LineChart over 10 runs × 100,000 points, plus chart.html
import * as esbuild from 'esbuild';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', '..', 'node_modules', '.cache', 'rlora-bench'); // ignored by git
mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: [join(here, 'pipeline.ts')],
  outfile: join(out, 'pipeline.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['vscode'],
  logLevel: 'warning',
});
await esbuild.build({
  entryPoints: [join(here, 'chartPage.ts')],
  outfile: join(out, 'chart.js'),
  bundle: true,
  platform: 'browser',
  format: 'iife',
  target: 'es2022',
  logLevel: 'warning',
});
writeFileSync(
  join(out, 'chart.html'),
  `<!doctype html><html><head><meta charset="utf-8"><style>body{margin:0;background:#1e1e1e}
#wrap{width:1200px;height:600px}</style></head><body class="vscode-dark"><div id="wrap"><canvas id="chart"></canvas></div>
<script src="chart.js"></script></body></html>\n`,
);
