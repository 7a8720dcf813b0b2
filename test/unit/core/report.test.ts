// The HTML report: self-contained (chart.js inlined, no network), the table and every run in it.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareRuns, SMOOTHING_FRACTION, SMOOTHING_NOTE } from '../../../src/core/compare';
import { decimate, renderReport } from '../../../src/core/report';
import { RunSeries } from '../../../src/core/series';
import type { WorkerEvent } from '../../../src/core/events';

function run(label: string, rate: number) {
  const s = new RunSeries();
  const ev: WorkerEvent[] = [];
  for (let i = 1; i <= 50; i++) ev.push({ type: 'metric', version: 1, time: i, step: i, split: 'train', loss: Math.exp(-rate * i) });
  ev.push({ type: 'eval', version: 1, time: 51, step: 50, metrics: { loss: 0.1, accuracy: 0.5 } });
  s.add(ev);
  return { key: `e/${label}`, label, method: 'm', state: 'completed', series: s };
}

describe('renderReport', () => {
  it('inlines chart.js, embeds the data and the table, references nothing outside the file', () => {
    const runs = [run('RiemannLoRA', 0.05), run('LoRA-AdamW </script><b>', 0.03)];
    const html = renderReport({
      title: 'Demo',
      comparison: compareRuns(runs, 'e/LoRA-AdamW </script><b>'),
      runs: runs.map((r) => ({ key: r.key, label: r.label, train: r.series.train, eval: r.series.eval })),
      facts: { task: 'synthetic-lowrank' },
    });
    expect(html.length).toBeGreaterThan(100_000); // chart.js itself is inside
    expect(html).toContain('Chart.js v4');
    expect(html).not.toMatch(/<script[^>]+src=/i);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).not.toMatch(/url\(\s*['"]?https?:/i);
    expect(html).not.toMatch(/(src|href)=["']?https?:/i);
    // the hostile label is escaped in the table and cannot close the data script
    expect(html).toContain('LoRA-AdamW &lt;/script&gt;&lt;b&gt; (baseline)');
    expect(html.match(/<\/script>/gi)).toHaveLength(3);
    const data = JSON.parse(/<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)![1]!) as { runs: { label: string; raw: number[][] }[]; evalNames: string[] };
    expect(data.runs.map((r) => r.label)).toEqual(['RiemannLoRA', 'LoRA-AdamW </script><b>']);
    expect(data.runs[0]!.raw).toHaveLength(50);
    expect(data.evalNames).toEqual(['loss', 'accuracy']);
    for (const h of ['method', 'final loss (smoothed)', 'best loss (smoothed)', 'best eval', 'steps to target', 'speedup', 'train wall s', 'peak memory']) expect(html).toContain(`<th>${h}</th>`);
    // the note states the window of the code (one constant), and the smoothed curve says it is smoothed
    expect(html).toContain(`final loss (smoothed): the ${SMOOTHING_NOTE}`);
    expect(SMOOTHING_NOTE).toContain(`${SMOOTHING_FRACTION * 100}%`);
    expect(html).toContain("label: r.label + ' (smoothed)'");
  });

  it('its Content Security Policy allows only the inline blocks it wrote, by hash (no unsafe-inline)', () => {
    const runs = [run('RiemannLoRA', 0.05), run('<img src=x onerror=alert(1)>', 0.03)];
    const html = renderReport({
      title: 'Demo',
      comparison: compareRuns(runs, runs[1]!.key),
      runs: runs.map((r) => ({ key: r.key, label: r.label, train: r.series.train, eval: r.series.eval })),
    });
    expect(html).not.toContain('unsafe-');
    const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/.exec(html)![1]!;
    const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name!, values]));
    expect(directives.get('default-src')).toEqual(["'none'"]);
    const sha = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
    // every executable inline script (not the JSON data block) and every style block is listed, and nothing else
    const scripts = [...html.matchAll(/<script>(.*?)<\/script>/gs)].map((m) => sha(m[1]!));
    const styles = [...html.matchAll(/<style>(.*?)<\/style>/gs)].map((m) => sha(m[1]!));
    expect(scripts).toHaveLength(2);
    expect(styles).toHaveLength(1);
    expect(directives.get('script-src')).toEqual(scripts);
    expect(directives.get('style-src')).toEqual(styles);
    const markup = html.replace(/<(script|style)\b[^>]*>.*?<\/\1>/gs, '<$1></$1>');
    expect(markup).not.toMatch(/<script(?![^>]*type="application\/json")[^>]+>/); // no script tag with attributes but the data block
    expect(markup).not.toMatch(/<[^>]+\son\w+=/i); // no inline event handlers (a hash does not allow them)
    expect(markup).not.toMatch(/<[^>]+\sstyle=/i); // no style attributes (style-src has no 'unsafe-inline')
    expect(markup).toContain('&lt;img src=x onerror=alert(1)&gt;'); // the hostile label is text
  });

  it('the hash covers what the browser parses: CR LF in chart.js becomes LF', () => {
    const t = mkdtempSync(join(tmpdir(), 'rlora-report-'));
    try {
      const chart = join(t, 'chart.umd.js');
      writeFileSync(chart, 'window.Chart = function () {};\r\n// Chart.js v4 stand-in\r\n');
      const runs = [run('A', 0.05)];
      const html = renderReport({ title: 'x', comparison: compareRuns(runs, null), runs: [], chartJsPath: chart });
      expect(html).not.toContain('\r');
      const body = /<script>(window\.Chart.*?)<\/script>/s.exec(html)![1]!;
      expect(html).toContain(`'sha256-${createHash('sha256').update(body).digest('base64')}'`);
    } finally {
      rmSync(t, { recursive: true, force: true });
    }
  });
});

describe('decimate', () => {
  it('keeps series short, in step order, and keeps the extremes (spikes) of every bucket', () => {
    const pts = Array.from({ length: 10_000 }, (_, i) => ({ step: i, loss: i === 5003 ? 100 : Math.sin(i) }));
    const d = decimate(pts, (p) => p.loss, 1000);
    expect(d.length).toBeLessThanOrEqual(1000);
    expect(d.some((p) => p.loss === 100)).toBe(true);
    for (let i = 1; i < d.length; i++) expect(d[i]!.step).toBeGreaterThan(d[i - 1]!.step);
    expect(decimate(pts.slice(0, 10), (p) => p.loss, 1000)).toHaveLength(10);
  });
});

describe('renderReport of a fair comparison', () => {
  it('puts the verdict, the table with intervals, the sensitivity data and the per-seed table in, escaped', async () => {
    const { DEFAULT_METHODS } = await import('../../../src/core/compare');
    const { demoConfig } = await import('../../../src/core/demo');
    const { initialRecord } = await import('../../../src/core/fairComparison');
    const { planFair } = await import('../../../src/core/protocol');
    const { validate } = await import('../../../src/core/schemas');
    const plan = planFair(demoConfig('synthetic-lowrank'), DEFAULT_METHODS.slice(0, 2), 'lora-adamw', { trials: 2, seeds: 2 });
    const record = initialRecord(plan);
    record.state = 'complete';
    record.metric = { name: 'loss', higher: false };
    record.target = 0.2;
    record.verdict = ['RiemannLoRA vs LoRA-AdamW: final test loss −0.01 <b>not</b> significant'];
    for (const m of record.methods) {
      m.trials = [
        { rung: 0, lr: 1e-4, steps: 150, run: `${m.id}-r0-a`, state: 'completed', metric: 0.5, loss: 0.5 },
        { rung: 0, lr: 1e-3, steps: 150, run: `${m.id}-r0-b`, state: 'diverged', metric: null, loss: null },
      ];
      m.chosen_lr = 1e-4;
      m.replicates = plan.replicateSeeds.map((seed) => ({ seed, run: `${m.id}-seed${seed}`, state: 'completed', lr: 1e-4, final_metric: 0.2 + seed / 100, final_eval_loss: 0.2, final_loss_smoothed: 0.3, steps_to_target: 100, time_to_target_s: 5, train_wall_s: 9 }));
      m.summary = { final_metric: { mean: 0.205, low: 0.14, high: 0.27, n: 2, sd: 0.007, level: 0.95 }, final_loss_smoothed: null, steps_to_target: { reached: 2, of: 2, interval: null } };
    }
    expect(validate('comparison', JSON.parse(JSON.stringify(record)))).toEqual([]);
    const runs = [run('RiemannLoRA · seed 0', 0.05)];
    const html = renderReport({ title: 'Fair', fair: record, runs: runs.map((r) => ({ key: r.key, label: r.label, train: r.series.train, eval: r.series.eval, group: 'a' })) });
    expect(html).toContain('<h2>Verdict</h2>');
    expect(html).toContain('final test loss −0.01 &lt;b&gt;not&lt;/b&gt; significant');
    expect(html).toContain('<canvas id="sensitivity">');
    expect(html).toContain('0.205 ± 0.065');
    expect(html.match(/<tr><td>(RiemannLoRA|LoRA-AdamW)<\/td><td>\d<\/td>/g)).toHaveLength(4); // the per-seed table
    const data = JSON.parse(/<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)![1]!) as { sensitivity: { label: string; chosen: number; points: [number, number | null, number][] }[] };
    expect(data.sensitivity.map((m) => m.label)).toEqual(['RiemannLoRA', 'LoRA-AdamW']);
    expect(data.sensitivity[0]!.points).toEqual([
      [1e-4, 0.5, 0],
      [1e-3, null, 0],
    ]);
    // still only hashed inline blocks: the CSP names no 'unsafe-*'
    expect(html).not.toMatch(/unsafe-/);
  });
});
