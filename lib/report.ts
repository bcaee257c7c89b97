// Run reports: metrics.json (machine-readable) and report.html (self-contained: ECharts inlined, thumbnails as data
// URIs), written atomically. Charts: loss, accuracy and learning rate per epoch; a confusion-matrix heatmap; and for
// experiments a bar chart of validation accuracy and time per arch and strategy.
import { writeFileDurable } from './durable';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { EvalReport } from './metrics';
import type { EpochRecord } from './trainer';
import type { Assessment, Collapse } from './transfer';
import type { CandidateRanking } from './candidates';

/** Everything a training run reports. Serialised as-is into metrics.json. */
export interface RunSummary {
  title: string;
  createdAt: string;
  arch: string;
  strategy: string;
  weights: string | null;
  classes: string[];
  trainSamples: number;
  valSamples: number;
  options: Record<string, unknown>;
  environment: { libtorch: string; threads: number; device: string; precision: string; bf16: boolean };
  history: EpochRecord[];
  best?: { epoch: number; value: number };
  seconds: number;
  evaluation?: EvalReport;
  /**
   * Misclassified validation images (at most `maxThumbnails`), thumbnails as base64 JPEG framed as the eval
   * transform frames them; with the predicted class's probability and the true class's, and the Grad-CAM map of
   * the predicted class (`cam`: `size × size` values 0–255, row-major) that the report overlays.
   */
  misclassified: { path: string; label: string; predicted: string; thumbnail?: string; probability?: number; trueProbability?: number; cam?: { size: number; data: number[] } }[];
  /** Domain adaptation with labelled target data: the final weights on it. */
  targetEvaluation?: { data: string; accuracy: number; loss: number; count: number };
  /** `strategy: 'auto'`: the assessment and its recommendation. */
  assessment?: Assessment;
  /** `--candidates`: the source models ranked on the training images, best (the one trained) first. */
  ranking?: CandidateRanking;
  /** Epochs whose validation predictions collapsed to one class, and what 'auto' did about it. */
  collapses?: Collapse[];
  recoveries?: { epoch: number; action: string }[];
  /** The weights file the run ended with; absent when none was written (e.g. interrupted in its first epoch). */
  bestWeights?: string;
  /** The run was stopped (Ctrl-C, SIGTERM, an aborted signal) before its epochs were done: `history` holds the completed epochs. */
  interrupted?: boolean;
  /** Files of each split that were not used: undecodable during the run, or refused at scan time. */
  skipped?: { train: SkipSummary; val?: SkipSummary };
}

/** How many files of one split were left out, and the first few of them with the reason. */
export interface SkipSummary {
  /** Files the scan found with an image extension (decodable or not). */
  files: number;
  /** Of these, how many could not be decoded (onError 'skip'). */
  undecodable: number;
  /** Files refused at scan time (extension not supported), not part of `files`. */
  unsupported: number;
  /** The first few skipped files, undecodable first. */
  examples: { path: string; reason: string }[];
}

/** One row of an experiment (one arch × strategy run). */
export interface ExperimentRow {
  arch: string;
  strategy: string;
  weights: string | null;
  valAccuracy: number | null;
  bestEpoch: number | null;
  seconds: number;
  epochs: number;
  runDir: string;
  note?: string;
}

let echartsSource: string | undefined;
function echarts(): string {
  if (echartsSource === undefined) {
    const main = require.resolve('echarts'); // .../echarts/dist/echarts.js
    echartsSource = readFileSync(join(dirname(main), 'echarts.min.js'), 'utf8');
  }
  return echartsSource;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** JSON that is safe inside a <script> element. */
function scriptJson(data: unknown): string {
  return JSON.stringify(data).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}


const pct = (x: number | undefined | null): string => (x === undefined || x === null ? '–' : `${(100 * x).toFixed(1)}%`);

const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}.chart{height:300px;border:1px solid #eee}
table{border-collapse:collapse;margin-top:8px}td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child,td.t,th.t{text-align:left}.thumbs{display:flex;flex-wrap:wrap;gap:10px}
.thumbs figure{margin:0;width:112px;font-size:12px}.thumbs img{width:112px;height:112px;object-fit:cover;border:2px solid #c33}
.cam{position:relative;width:116px;height:116px}.cam canvas{position:absolute;left:2px;top:2px;width:112px;height:112px;pointer-events:none}
.warn{background:#fff3f3;border:1px solid #e0b4b4;padding:8px 12px}`;

function page(title: string, body: string, script: string, data: unknown): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body>${body}
<script id="report-data" type="application/json">${scriptJson(data)}</script>
<script>${echarts()}</script>
<script>
const DATA = JSON.parse(document.getElementById('report-data').textContent);
const charts = [], pending = [];
function chart(id, option) { const c = echarts.init(document.getElementById(id), null, { renderer: 'canvas' }); c.setOption(Object.assign({ animation: false }, option)); charts.push(c); }
window.addEventListener('resize', () => charts.forEach((c) => c.resize()));
${script}
Promise.all(pending).then(() => { window.reportReady = true; });
</script></body></html>
`;
}

function skippedHtml(s: RunSummary): string {
  const splits = Object.entries(s.skipped ?? {}).filter(([, k]) => k && (k.undecodable > 0 || k.unsupported > 0)) as [string, SkipSummary][];
  if (!splits.length) return '';
  const rows = splits
    .map(([name, k]) => `<tr><td>${name}</td><td>${k.undecodable} of ${k.files} (${pct(k.files ? k.undecodable / k.files : 0)})</td><td>${k.unsupported}</td><td>${k.examples
      .map((x) => `${escapeHtml(x.path.split(/[\\/]/).pop() ?? '')}: ${escapeHtml(x.reason.replace(x.path, '').replace(/^:\s*/, ''))}`)
      .join('<br>')}</td></tr>`)
    .join('');
  return `<h2>Skipped files</h2><table><tr><th>split</th><th>undecodable</th><th>unsupported type</th><th>first files</th></tr>${rows}</table>`;
}

function assessmentHtml(s: RunSummary): string {
  const a = s.assessment;
  if (!a) return '';
  const r = a.recommendation;
  return `<h2>Assessment (strategy auto)</h2><table><tr><th>figure</th><th>value</th></tr>
<tr><td>images, per class (imbalance)</td><td>${a.count}, ${a.imagesPerClass.toFixed(1)} (${a.imbalance.toFixed(2)}×)</td></tr>
<tr><td>linear-probe accuracy (cross-validated, L2 ${a.linearProbeL2})</td><td>${pct(a.linearProbeAccuracy)}</td></tr>
<tr><td>k-NN accuracy (cross-validated)</td><td>${pct(a.knnAccuracy)}</td></tr>
<tr><td>chance (majority class)</td><td>${pct(a.chance)}</td></tr>
<tr><td>LogME</td><td>${a.logme.toFixed(4)}</td></tr>
<tr><td>BatchNorm shift (mean KL over ${a.bnLayers} layers)</td><td>${a.bnShift === null ? 'no BatchNorm' : a.bnShift.toFixed(3)}</td></tr>
<tr><td>assessment time</td><td>${a.seconds.toFixed(1)} s</td></tr></table>
<p><b>Chosen: ${escapeHtml(r.strategy)}${r.trainFrom ? ` from ${escapeHtml(r.trainFrom)}` : ''}</b>${r.epochs ? `, ${r.epochs} fine-tuning epochs at lr ${r.lr} / backbone ${r.backboneLr}` : ''}. ${escapeHtml(r.reason)}</p>`;
}

function rankingHtml(s: RunSummary): string {
  const r = s.ranking;
  if (!r) return '';
  const rows = r.ranking
    .map((x) => `<tr><td>${x.rank}</td><td>${escapeHtml(x.name)}</td><td>${pct(x.assessment.linearProbeAccuracy)}</td><td>${x.assessment.logme.toFixed(4)}</td><td>${pct(x.assessment.knnAccuracy)}</td><td>${x.assessment.seconds.toFixed(1)} s</td></tr>`)
    .join('');
  return `<h2>Source model (ranked on the training images)</h2><p>Ordered by ${escapeHtml(r.orderedBy)}; the first was trained.${r.closeCallReason ? ` <b>Close call:</b> ${escapeHtml(r.closeCallReason)}.` : ''}</p><table><tr><th>rank</th><th>candidate</th><th>linear probe (cv)</th><th>LogME</th><th>k-NN (cv)</th><th>time</th></tr>${rows}</table>`;
}

function collapseHtml(s: RunSummary): string {
  if (!s.collapses?.length) return '';
  const items = s.collapses.map((c) => `<li>epoch ${c.epoch + 1}: ${pct(c.predictedShare)} of validation predictions were '${escapeHtml(c.class)}', which is ${pct(c.dataShare)} of the data</li>`).join('');
  const rec = (s.recoveries ?? []).map((r) => `<li>${escapeHtml(r.action)}</li>`).join('');
  return `<h2>Collapse</h2><div class="warn"><p>The model collapsed to predicting one class:</p><ul>${items}</ul>${rec ? `<p>Recovery:</p><ul>${rec}</ul>` : '<p>Consider a linear head (<code>head: \'linear\'</code>), a lower learning rate or <code>strategy: \'auto\'</code>.</p>'}</div>`;
}

/** Precision, recall, F1 and support per class. */
function perClassHtml(e: RunSummary['evaluation']): string {
  return e
    ? `<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>${e.perClass
        .map((c) => `<tr><td>${escapeHtml(c.class)}</td><td>${c.precision.toFixed(3)}</td><td>${c.recall.toFixed(3)}</td><td>${c.f1.toFixed(3)}</td><td>${c.support}</td></tr>`)
        .join('')}</table>`
    : '<p>No validation data.</p>';
}

/** Thumbnails of misclassified validation images, with a canvas for the Grad-CAM overlay where a map exists. */
function misclassifiedHtml(s: RunSummary): string {
  return s.misclassified.length
    ? `<div class="thumbs">${s.misclassified
        .map(
          (m) =>
            `<figure><div class="cam">${m.thumbnail ? `<img alt="${escapeHtml(m.path)}" src="data:image/jpeg;base64,${m.thumbnail}">` : ''}${m.cam && m.thumbnail ? '<canvas class="gradcam" width="112" height="112"></canvas>' : ''}</div><figcaption>${escapeHtml(m.label)}${m.trueProbability !== undefined ? ` (${pct(m.trueProbability)})` : ''} → <b>${escapeHtml(m.predicted)}</b>${m.probability !== undefined ? ` (${pct(m.probability)})` : ''}<br>${escapeHtml(m.path.split(/[\\/]/).pop() ?? '')}</figcaption></figure>`,
        )
        .join('')}</div>`
    : '<p>None.</p>';
}

// The run report's charts (ECharts) and Grad-CAM overlays, drawn in the page from DATA.
const RUN_REPORT_SCRIPT = `
const H = DATA.history, ep = H.map((r) => r.epoch + 1);
const line = (name, ys) => ({ name, type: 'line', data: ys.map((y) => (y === undefined || y === null ? null : y)), showSymbol: true });
const axes = (yname) => ({ tooltip: { trigger: 'axis' }, legend: { top: 4, right: 10 }, grid: { top: 56, left: 56, right: 20, bottom: 36 },
  xAxis: { type: 'category', name: 'epoch', data: ep }, yAxis: { type: 'value', name: yname, scale: true } });
chart('chart-loss', Object.assign(axes('loss'), { title: { text: 'Loss' }, series: [line('train', H.map((r) => r.loss)), line('validation', H.map((r) => r.valLoss))] }));
chart('chart-accuracy', Object.assign(axes('accuracy'), { title: { text: 'Accuracy' }, series: [line('train', H.map((r) => r.accuracy)), line('validation', H.map((r) => r.valAccuracy))].concat(H.some((r) => r.valTop5 !== undefined) ? [line('validation top-5', H.map((r) => r.valTop5))] : []) }));
chart('chart-lr', Object.assign(axes('learning rate'), { title: { text: 'Learning rate' }, yAxis: { type: 'log', name: 'lr' }, series: [line('head', H.map((r) => r.lr.head)), line('backbone', H.map((r) => r.lr.backbone || null))] }));
const E = DATA.evaluation;
if (E) {
  const cells = []; let max = 1;
  E.confusion.forEach((row, t) => row.forEach((n, p) => { cells.push([p, t, n]); max = Math.max(max, n); }));
  chart('chart-confusion', { title: { text: 'Confusion matrix' }, tooltip: { position: 'top' }, grid: { top: 40, left: 90, right: 20, bottom: 70 },
    xAxis: { type: 'category', data: E.classes, name: 'predicted', nameLocation: 'middle', nameGap: 50, axisLabel: { rotate: 30 } },
    yAxis: { type: 'category', data: E.classes, name: 'true', inverse: true },
    visualMap: { min: 0, max, calculable: false, orient: 'horizontal', left: 'center', bottom: 0, show: false, inRange: { color: ['#f7fbff', '#08519c'] } },
    series: [{ type: 'heatmap', data: cells, label: { show: true } }] });
}
// Grad-CAM overlays, drawn with the photo into one canvas: the photo's luminance stretched to its 1st–99th
// percentile (a dark scan or a night photo stays readable), the map (bilinear, blue → red) blended at most 45 %
// and only where it is above a quarter of its range, so the photo always shows through
const ramp = (t) => [255 * Math.min(1, 2 * t), 255 * (1 - Math.abs(2 * t - 1)), 255 * Math.max(0, 1 - 2 * t)];
function drawCam(canvas, img, cam) {
  const W = canvas.width, Hc = canvas.height, ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0, W, Hc);
  const px = ctx.getImageData(0, 0, W, Hc), d = px.data, n = W * Hc;
  const hist = new Array(256).fill(0);
  for (let k = 0; k < n; k++) hist[Math.round(0.299 * d[4 * k] + 0.587 * d[4 * k + 1] + 0.114 * d[4 * k + 2])]++;
  const pctl = (q) => { let acc = 0; for (let v = 0; v < 256; v++) { acc += hist[v]; if (acc >= q * n) return v; } return 255; };
  const lo = pctl(0.01), hi = Math.max(pctl(0.99), lo + 1), gain = Math.min(8, 255 / (hi - lo));
  const S = cam.size, at = (i, j) => cam.data[Math.min(S - 1, Math.max(0, i)) * S + Math.min(S - 1, Math.max(0, j))] / 255;
  for (let y = 0; y < Hc; y++) for (let x = 0; x < W; x++) {
    const fy = ((y + 0.5) * S) / Hc - 0.5, fx = ((x + 0.5) * S) / W - 0.5, i = Math.floor(fy), j = Math.floor(fx), wy = fy - i, wx = fx - j;
    const t = (1 - wy) * ((1 - wx) * at(i, j) + wx * at(i, j + 1)) + wy * ((1 - wx) * at(i + 1, j) + wx * at(i + 1, j + 1));
    const a = t > 0.25 ? (0.45 * (t - 0.25)) / 0.75 : 0, heat = ramp(t), k = 4 * (y * W + x);
    for (let c = 0; c < 3; c++) d[k + c] = Math.round((1 - a) * Math.min(255, Math.max(0, (d[k + c] - lo) * gain)) + a * heat[c]);
  }
  ctx.putImageData(px, 0, 0);
  canvas.dataset.drawn = 'true';
}
document.querySelectorAll('canvas.gradcam').forEach((canvas, i) => {
  const cam = DATA.cams[i], img = canvas.parentElement.querySelector('img');
  if (!cam || !img) return;
  pending.push(img.decode().then(() => drawCam(canvas, img, cam), () => undefined));
});`;

/** The report.html of one run. */
export function renderRunReport(s: RunSummary): string {
  const e = s.evaluation;
  const last = s.history[s.history.length - 1];
  const body = `<h1>${escapeHtml(s.title)}</h1>
<p class="meta">${escapeHtml(s.arch)} · ${escapeHtml(s.strategy)} · weights: ${escapeHtml(s.weights ?? 'random initialisation')} · ${s.classes.length} classes ·
${s.trainSamples} training / ${s.valSamples} validation images · ${s.history.length} epochs in ${s.seconds.toFixed(1)} s ·
libtorch ${escapeHtml(s.environment.libtorch)}, ${s.environment.threads} threads, ${escapeHtml(s.environment.device)}, precision ${escapeHtml(s.environment.precision)} · ${escapeHtml(s.createdAt)}</p>
<table><tr><th>metric</th><th>value</th></tr>
<tr><td>validation accuracy (final)</td><td>${pct(e?.accuracy)}</td></tr>
${e?.top5 !== undefined ? `<tr><td>validation top-5</td><td>${pct(e.top5)}</td></tr>` : ''}
<tr><td>validation loss</td><td>${e ? e.loss.toFixed(4) : '–'}</td></tr>
<tr><td>best epoch (${s.best ? 'monitored' : '–'})</td><td>${s.best ? `${s.best.epoch + 1} (${s.best.value.toFixed(4)})` : '–'}</td></tr>
<tr><td>training accuracy (last epoch)</td><td>${pct(last?.accuracy)}</td></tr>
${s.targetEvaluation ? `<tr><td>target-domain accuracy (${s.targetEvaluation.count} images)</td><td>${pct(s.targetEvaluation.accuracy)}</td></tr>` : ''}
${last?.adaptation ? `<tr><td>adaptation loss (last epoch)${last.adaptation.domainAccuracy !== undefined ? ' / domain-classifier accuracy' : ''}</td><td>${last.adaptation.loss.toFixed(4)}${last.adaptation.domainAccuracy !== undefined ? ` / ${pct(last.adaptation.domainAccuracy)}` : ''}</td></tr>` : ''}</table>
${skippedHtml(s)}
${s.interrupted ? `<div class="warn interrupted"><p><b>Interrupted</b> after ${s.history.length} complete epoch${s.history.length === 1 ? '' : 's'}: ${s.bestWeights ? `the weights file is ${escapeHtml(s.bestWeights)}` : 'no epoch finished, so no weights were written'}; the model was not evaluated. Resume with <code>train --resume</code> on this run's folder.</p></div>` : ''}
${rankingHtml(s)}
${assessmentHtml(s)}
${collapseHtml(s)}
<h2>Curves</h2>
<div class="grid"><div id="chart-loss" class="chart"></div><div id="chart-accuracy" class="chart"></div>
<div id="chart-lr" class="chart"></div><div id="chart-confusion" class="chart"></div></div>
<h2>Per class</h2>${perClassHtml(e)}
<h2>Misclassified validation images</h2>${s.misclassified.some((m) => m.cam) ? '<p class="meta">Overlay: Grad-CAM of the predicted class (red: where the image drove the wrong answer). In brackets: the probability of the true and of the predicted class.</p>' : ''}${misclassifiedHtml(s)}`;
  return page(s.title, body, RUN_REPORT_SCRIPT, { history: s.history, evaluation: e ? { classes: e.classes, confusion: e.confusion } : null, cams: s.misclassified.filter((m) => m.cam && m.thumbnail).map((m) => m.cam) });
}

/** metrics.json + report.html in `dir`. Returns the report path. */
/** What `tune` reports (lib/tune.ts). */
export interface TuneReport {
  title: string;
  rungs: number;
  results: { trial: number; rung: number; epochs: number; config: Record<string, unknown>; valAccuracy: number; valLoss: number; seconds: number }[];
  best: { trial: number; rung: number; valAccuracy: number };
  weights: string;
  epochs: number;
  seconds: number;
}

/** report.html of a hyperparameter search: every fit by rung, best first, the chosen one marked. */
export async function writeTuneReport(dir: string, t: TuneReport): Promise<string> {
  const fmt = (x: unknown) => (typeof x === 'number' ? (Number.isInteger(x) ? String(x) : x.toPrecision(3)) : x === null ? 'head only' : String(x));
  const keys = t.results.length ? Object.keys(t.results[0].config) : [];
  const rows = [...t.results]
    .sort((a, b) => b.rung - a.rung || b.valAccuracy - a.valAccuracy || a.valLoss - b.valLoss)
    .map((r) => `<tr${r.trial === t.best.trial && r.rung === t.best.rung ? ' class="best"' : ''}><td>${r.rung + 1}</td><td>${r.trial}</td><td>${r.epochs}</td>${keys.map((k) => `<td>${escapeHtml(fmt(r.config[k]))}</td>`).join('')}<td>${pct(r.valAccuracy)}</td><td>${r.valLoss.toFixed(4)}</td><td>${r.seconds.toFixed(1)}</td></tr>`)
    .join('');
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(t.title)}</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}tr.best{background:#dfd;font-weight:bold}</style></head><body>
<h1>${escapeHtml(t.title)}</h1>
<p>Successive halving over ${t.rungs} rung${t.rungs === 1 ? '' : 's'}: ${t.results.length} fits, ${t.epochs} epochs, ${t.seconds.toFixed(1)} s. Best: trial ${t.best.trial} at rung ${t.best.rung + 1}, validation accuracy ${pct(t.best.valAccuracy)}; weights ${escapeHtml(t.weights)}.</p>
<table><tr><th>rung</th><th>trial</th><th>epochs</th>${keys.map((k) => `<th>${escapeHtml(k)}</th>`).join('')}<th>val acc</th><th>val loss</th><th>seconds</th></tr>${rows}</table></body></html>`;
  const path = join(dir, 'report.html');
  await writeFileDurable(path, html);
  return path;
}

export async function writeRunReport(dir: string, s: RunSummary): Promise<string> {
  const { misclassified, ...rest } = s;
  await writeFileDurable(join(dir, 'metrics.json'), JSON.stringify({ ...rest, misclassified: misclassified.map(({ thumbnail, cam, ...m }) => m) }, null, 1));
  const path = join(dir, 'report.html');
  await writeFileDurable(path, renderRunReport(s));
  return path;
}

/** The summary report of an experiment: table + accuracy/time bar charts, links to each run's report. */
export function renderExperimentReport(title: string, rows: ExperimentRow[], info: string): string {
  const base = (w: string | null) => (w === null ? 'random init' : (w.split(/[\\/]/).pop() ?? w));
  const notes = [...new Set(rows.filter((r) => r.note).map((r) => r.note as string))];
  const body = `<h1>${escapeHtml(title)}</h1><p class="meta">${escapeHtml(info)}</p>
<table><tr><th>arch</th><th class="t">strategy</th><th class="t">weights</th><th>val accuracy</th><th>best epoch</th><th>epochs</th><th>time (s)</th><th class="t">run</th></tr>
${rows
  .map(
    (r) =>
      `<tr><td>${escapeHtml(r.arch)}</td><td class="t">${escapeHtml(r.strategy)}</td><td class="t" title="${escapeHtml(r.weights ?? '')}">${escapeHtml(base(r.weights))}</td><td>${r.note ? 'n/a' : pct(r.valAccuracy)}</td><td>${r.bestEpoch === null ? '–' : r.bestEpoch + 1}</td><td>${r.note ? '–' : r.epochs}</td><td>${r.note ? '–' : r.seconds.toFixed(1)}</td><td class="t">${r.note ? `n/a<sup>${notes.indexOf(r.note) + 1}</sup>` : `<a href="${escapeHtml(r.runDir)}/report.html">report</a>`}</td></tr>`,
  )
  .join('\n')}</table>
${notes.map((n, i) => `<p class="meta"><sup>${i + 1}</sup> ${escapeHtml(n)}</p>`).join('\n')}
<div class="grid" style="margin-top:20px"><div id="chart-accuracy" class="chart"></div><div id="chart-time" class="chart"></div></div>`;
  const script = `
const R = DATA.rows, names = R.map((r) => r.arch + ' · ' + r.strategy);
const bars = (id, title, ys, name) => chart(id, { title: { text: title }, tooltip: {}, grid: { top: 40, left: 150, right: 50, bottom: 30 },
  yAxis: { type: 'category', data: names, inverse: true }, xAxis: { type: 'value', name }, series: [{ type: 'bar', data: ys, label: { show: true, position: 'right' } }] });
bars('chart-accuracy', 'Validation accuracy', R.map((r) => r.valAccuracy === null ? null : +(100 * r.valAccuracy).toFixed(1)), '%');
bars('chart-time', 'Training time', R.map((r) => (r.note ? null : +r.seconds.toFixed(1))), 's');`;
  return page(title, body, script, { rows });
}
