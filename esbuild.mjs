// Bundles: the extension host (node/cjs, `vscode` external), the headless CLI (node/cjs) and the
// webviews (browser/iife, with a real CSS file next to each script). Type-checking is `tsc --noEmit`.
import * as esbuild from 'esbuild';
import { existsSync } from 'node:fs';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

const common = {
  bundle: true,
  sourcemap: production ? false : 'linked',
  minify: production,
  logLevel: 'warning',
  legalComments: 'linked',
};

/** Entry points that exist yet: the layout grows issue by issue. */
const present = (entries) => Object.fromEntries(Object.entries(entries).filter(([, file]) => existsSync(file)));

const builds = [
  {
    ...common,
    entryPoints: present({ extension: 'src/extension.ts', cli: 'src/cli.ts' }),
    outdir: 'dist',
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['vscode'],
    // ES modules first: jsonc-parser's "main" is a UMD build whose lazy require('./impl/…') esbuild cannot
    // follow (the bundle then fails at run time with "Cannot find module './impl/format'").
    mainFields: ['module', 'main'],
  },
  {
    ...common,
    entryPoints: present({
      'webview/run': 'webview/run/main.ts',
      'webview/compare': 'webview/compare/main.ts',
    }),
    outdir: 'dist',
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    loader: { '.ttf': 'file', '.woff2': 'file' },
  },
].filter((b) => Object.keys(b.entryPoints).length > 0);

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
