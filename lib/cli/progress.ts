// Progress output of the CLI: two live bars (epochs, batches with loss/accuracy and ETA) on a TTY, one plain line
// per epoch otherwise, nothing on stdout with --json (lines go to stderr so stdout stays one JSON document).
import { MultiBar, Presets, SingleBar } from 'cli-progress';
import type { BatchEndEvent, EpochRecord, Trainer } from '../trainer';
import type { Assessment, Collapse } from '../transfer';
import type { CandidateRanking } from '../candidates';

export interface Output {
  json: boolean;
  quiet: boolean;
  /** Human-readable line (stderr under --json). */
  log(line: string): void;
}

export function makeOutput(json: boolean, quiet = false): Output {
  return {
    json,
    quiet,
    log(line: string) {
      if (quiet) return;
      (json ? process.stderr : process.stdout).write(`${line}\n`);
    },
  };
}

const fmt = (x: number | undefined, d = 4): string => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(d));

export function epochLine(r: EpochRecord, epochs: number): string {
  const val = r.valAccuracy !== undefined ? ` val_loss ${fmt(r.valLoss)} val_acc ${fmt(r.valAccuracy)}` : '';
  return `epoch ${r.epoch + 1}/${epochs} loss ${fmt(r.loss)} acc ${fmt(r.accuracy)}${val} lr ${r.lr.head.toExponential(2)} ${r.seconds.toFixed(1)}s`;
}

/** Attaches progress output to a trainer for one fit; returns a function that closes the bars. */
export function attachProgress(trainer: Trainer, out: Output, label: string): () => void {
  let epochs = trainer.plannedEpochs;
  const tty = !out.json && !out.quiet && process.stdout.isTTY === true;
  // what the transfer decisions say goes to the log in both modes
  const onAssessment = (a: Assessment) => {
    epochs = trainer.plannedEpochs;
    epochBar?.setTotal(epochs);
    out.log(`${label}assessment: ${a.recommendation.strategy}${a.recommendation.trainFrom ? ` from ${a.recommendation.trainFrom}` : ''} — ${a.recommendation.reason}`);
  };
  const onCollapse = (c: Collapse) => out.log(`${label}warning: epoch ${c.epoch + 1}: ${(100 * c.predictedShare).toFixed(0)} % of validation predictions are '${c.class}' (${(100 * c.dataShare).toFixed(0)} % of the data): the model collapsed to one class`);
  const onRecovery = (r: { action: string }) => out.log(`${label}recovery: ${r.action}`);
  trainer.on('assessment', onAssessment);
  trainer.on('collapse', onCollapse);
  trainer.on('recovery', onRecovery);
  const detach = () => {
    trainer.off('assessment', onAssessment);
    trainer.off('collapse', onCollapse);
    trainer.off('recovery', onRecovery);
  };
  let epochBar: SingleBar | undefined;
  if (!tty) {
    const onEpoch = (r: EpochRecord) => out.log(`${label}${epochLine(r, epochs)}`);
    trainer.on('epochEnd', onEpoch);
    return () => {
      trainer.off('epochEnd', onEpoch);
      detach();
    };
  }
  const multi = new MultiBar(
    { clearOnComplete: false, hideCursor: true, etaBuffer: 20, format: '{name} |{bar}| {value}/{total} {info} ETA {eta_formatted}' },
    Presets.shades_classic,
  );
  epochBar = multi.create(epochs, 0, { name: `${label}epochs `, info: '' });
  let batchBar: SingleBar | undefined;
  const onBatch = (e: BatchEndEvent) => {
    if (!batchBar) batchBar = multi.create(e.batches, 0, { name: `${label}batches`, info: '' });
    batchBar.setTotal(e.batches);
    batchBar.update(e.batch + 1, { info: `loss ${fmt(e.loss)} acc ${fmt(e.accuracy, 3)}` });
  };
  const onEpoch = (r: EpochRecord) => {
    epochBar?.update(r.epoch + 1, { info: r.valAccuracy !== undefined ? `val_acc ${fmt(r.valAccuracy, 3)}` : `acc ${fmt(r.accuracy, 3)}` });
    multi.log(`${label}${epochLine(r, epochs)}\n`);
    batchBar?.update(0);
  };
  trainer.on('batchEnd', onBatch);
  trainer.on('epochEnd', onEpoch);
  return () => {
    trainer.off('batchEnd', onBatch);
    trainer.off('epochEnd', onEpoch);
    detach();
    multi.stop();
  };
}

/** A fixed-width text table. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  // numeric columns (every data cell a number, a percentage or '–') right-aligned, with their header
  const numeric = (c: string) => /^[-+]?[\d.,]+(e[-+]?\d+)?%?$|^–$|^n\/a$/.test(c);
  const right = header.map((_, i) => rows.length > 0 && cells.slice(1).every((r) => numeric(r[i] ?? '')));
  const line = (r: string[]) => r.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** The ranking of `assess --candidates` and `train --candidates`. */
export function rankingTable(r: CandidateRanking): string {
  return table(
    ['rank', 'candidate', 'linear probe (cv)', 'LogME', 'k-NN (cv)', 'time (s)'],
    r.ranking.map((x) => [x.rank, x.name, `${(100 * x.assessment.linearProbeAccuracy).toFixed(1)}%`, x.assessment.logme.toFixed(4), `${(100 * x.assessment.knnAccuracy).toFixed(1)}%`, x.assessment.seconds.toFixed(1)]),
  );
}
