// What a fit reports: per-epoch records, per-batch events and the result.
import type { Assessment, Collapse } from '../transfer';

export interface EpochRecord {
  epoch: number;
  loss: number;
  accuracy: number;
  valLoss?: number;
  valAccuracy?: number;
  valTop5?: number;
  lr: { head: number; backbone: number };
  seconds: number;
  trainableParameters: number;
  /** Bytes held by the feature cache (0 when not used). */
  featureCacheBytes: number;
  /** With loss scaling: the scale at the end of the epoch, and the optimizer steps skipped for inf/NaN gradients. */
  lossScale?: number;
  skippedSteps?: number;
  /** `'linear-probe'` for the probe of `'linear-probe'`, `'lp-ft'` and `'auto'` (then loss/accuracy are the probe's on the training features), `'fine-tune'` after it. */
  phase?: 'linear-probe' | 'fine-tune';
  /** The probe's chosen L2 penalty and cross-validated accuracy. */
  probe?: { l2: number; cvAccuracy: number };
  /** Domain adaptation: the mean adaptation loss, the DANN domain classifier's mean accuracy (0.5: the domains look alike) and the last factor. */
  adaptation?: { loss: number; domainAccuracy?: number; lambda: number };
  /** Set when validation predictions collapsed to one class (see the `'collapse'` event). */
  collapse?: Collapse;
  /** Data-parallel runs: this rank's gradient all-reduces over the epoch. */
  allReduce?: AllReduceStats;
}

export interface AllReduceStats {
  /** Gradient buckets all-reduced. */
  buckets: number;
  /** Of those, how many started during the backward pass (`distributed.overlap`). */
  bucketsDuringBackward: number;
  /** Seconds the optimizer steps waited for communication: what the overlap did not hide (with `overlap: false`, the all-reduces' whole time). */
  waitSeconds: number;
}

export interface BatchEndEvent {
  epoch: number;
  batch: number;
  batches: number;
  loss: number;
  accuracy: number;
  lr: { head: number; backbone: number };
}

export interface FitResult {
  history: EpochRecord[];
  /** Best monitored value and its epoch. */
  best?: { epoch: number; value: number };
  stoppedEarly: boolean;
  aborted: boolean;
  /** `'auto'`: the assessment (with its recommendation) the run followed. */
  assessment?: Assessment;
  /** Epochs whose validation predictions collapsed to one class. */
  collapses: Collapse[];
  /** What `'auto'` did about them. */
  recoveries: { epoch: number; action: string }[];
}
