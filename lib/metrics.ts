/** Per-class precision, recall, F1 and support. */
export interface ClassMetrics {
  class: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/** What `Trainer.evaluate` returns. */
export interface EvalReport {
  loss: number;
  accuracy: number;
  /** Top-5 accuracy, when there are at least 5 classes. */
  top5?: number;
  count: number;
  classes: string[];
  perClass: ClassMetrics[];
  /** confusion[true][predicted] */
  confusion: number[][];
  /** Dataset indices of misclassified samples with their predicted class. */
  errors: { index: number; label: number; predicted: number }[];
}

/** Accumulates logits batch by batch (never holding them all). */
export class MetricAccumulator {
  private lossSum = 0;
  private count = 0;
  private correct = 0;
  private correct5 = 0;
  readonly confusion: number[][];
  readonly errors: EvalReport['errors'] = [];

  constructor(readonly classes: string[]) {
    this.confusion = classes.map(() => classes.map(() => 0));
  }

  add(lossSum: number, logits: Float32Array, shape: number[], labels: Int32Array, indices: number[]): void {
    const [n, c] = shape;
    this.lossSum += lossSum;
    this.count += n;
    for (let i = 0; i < n; i++) {
      const row = logits.subarray(i * c, (i + 1) * c);
      let best = 0;
      for (let k = 1; k < c; k++) if (row[k] > row[best]) best = k;
      const y = labels[i];
      if (best === y) this.correct++;
      else this.errors.push({ index: indices[i], label: y, predicted: best });
      if (c >= 5) {
        let higher = 0;
        for (let k = 0; k < c; k++) if (row[k] > row[y]) higher++;
        if (higher < 5) this.correct5++;
      }
      if (y >= 0 && y < this.confusion.length && best < this.confusion.length) this.confusion[y][best]++;
    }
  }

  report(): EvalReport {
    const k = this.classes.length;
    const perClass = this.classes.map((name, i) => {
      const tp = this.confusion[i][i];
      const support = this.confusion[i].reduce((a, b) => a + b, 0);
      const predicted = this.confusion.reduce((a, row) => a + row[i], 0);
      const precision = predicted ? tp / predicted : 0;
      const recall = support ? tp / support : 0;
      const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
      return { class: name, precision, recall, f1, support };
    });
    return {
      loss: this.count ? this.lossSum / this.count : NaN,
      accuracy: this.count ? this.correct / this.count : NaN,
      top5: k >= 5 && this.count ? this.correct5 / this.count : undefined,
      count: this.count,
      classes: this.classes,
      perClass,
      confusion: this.confusion,
      errors: this.errors,
    };
  }
}
