// Dynamic batching for serving: concurrent predict calls coalesced into one forward pass (flushed at maxBatch images
// or after maxDelayMs), a bounded queue, per-call deadlines. Usable behind any HTTP framework.
import { EventEmitter } from 'node:events';
import { BusyError, InvalidOptionError, TimeoutError } from '../errors';
import { Model, Precision, Prediction } from '../model';
import { TensorData } from '../native';
import { Transform } from '../transform';
import * as v from '../validate';

export const BATCH_PREDICTOR_DEFAULTS = { maxBatch: 32, maxDelayMs: 5, maxQueue: 128, timeoutMs: 10_000, topk: 5 };

export interface BatchPredictorOptions {
  /** Images per forward pass at most. Default 32. */
  maxBatch?: number;
  /** How long the first image of a batch waits for company, in ms. Default 5. */
  maxDelayMs?: number;
  /** Images waiting (decoding or queued, not yet computing) at most; more are refused with a BusyError at once. Default 128. */
  maxQueue?: number;
  /** Default deadline of a call, in ms: work not started by then is dropped with a TimeoutError. Default 10 000. */
  timeoutMs?: number;
  /** Preprocessing; must end in a float tensor of one size (toTensor, normalize). Default `Transform.imagenetEval()`. */
  transform?: Transform;
  /** Default: the model's precision. */
  precision?: Precision;
  /** Decoder limit: images with more pixels are refused before decoding. Default as `Model.predict`. */
  maxPixels?: number;
}

export interface BatchPredictOptions {
  /** Classes returned, most probable first. Default min(5, numClasses). */
  topk?: number;
  /** Aborts the call while it waits (e.g. the HTTP client went away); it is then never computed. */
  signal?: AbortSignal;
  /** This call's deadline in ms (default the predictor's `timeoutMs`). */
  timeoutMs?: number;
}

/** What one forward pass did, for metrics (the `'batch'` event). */
export interface BatchEvent {
  size: number;
  /** Seconds of the forward pass. */
  seconds: number;
}

/** What `predict` takes: a file path, an encoded JPEG/PNG, or an image already preprocessed to float `[3, H, W]`. */
export type BatchInput = string | Buffer | TensorData;

interface Job {
  /** The encoded image (absent for a caller's own tensor). */
  input?: string | Buffer;
  /** The model's input: a caller's tensor, or decoding once started (for the first `2 × maxBatch` waiting jobs only). */
  tensor?: Promise<TensorData>;
  topk: number;
  deadline: number;
  signal?: AbortSignal;
  resolve: (p: Prediction[]) => void;
  reject: (e: Error) => void;
}

/**
 * Wraps a Model for serving. An image is decoded and resized on a native thread as soon as it is among the next two
 * batches (so the next batch is prepared while the current one computes), then waits for its batch: up to
 * `maxBatch` images run in one forward pass, and each caller gets its own top-k. Emits `'batch'` (BatchEvent).
 */
export class BatchPredictor extends EventEmitter {
  private model: Model;
  private queue: Job[] = [];
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private draining = false;
  private rate = 0;
  private readonly o: Required<Omit<BatchPredictorOptions, 'precision' | 'maxPixels'>> & Pick<BatchPredictorOptions, 'precision' | 'maxPixels'>;
  /** Counts since creation: images answered, forward passes, refused at the bound, dropped at their deadline, aborted, failed. */
  readonly stats = { served: 0, batches: 0, shed: 0, expired: 0, cancelled: 0, failed: 0 };

  constructor(model: Model, options: BatchPredictorOptions = {}) {
    super();
    if (!(model instanceof Model)) throw v.invalid('model', 'Model', model);
    const o = v.plainObject('options', options);
    v.knownKeys('options', o, ['maxBatch', 'maxDelayMs', 'maxQueue', 'timeoutMs', 'transform', 'precision', 'maxPixels']);
    const D = BATCH_PREDICTOR_DEFAULTS;
    const transform = options.transform ?? Transform.imagenetEval();
    if (!(transform instanceof Transform)) throw v.invalid('transform', 'Transform', transform);
    if (!transform.ops.some((op) => op.op === 'toTensor')) throw v.invalid('transform', 'a transform with toTensor (a float tensor for the model)', transform.ops.map((op) => op.op).join(' → '));
    this.o = {
      maxBatch: options.maxBatch === undefined ? D.maxBatch : v.positiveInt('maxBatch', options.maxBatch),
      maxDelayMs: options.maxDelayMs === undefined ? D.maxDelayMs : v.numberInRange('maxDelayMs', options.maxDelayMs, 0, 60_000),
      maxQueue: options.maxQueue === undefined ? D.maxQueue : v.positiveInt('maxQueue', options.maxQueue),
      timeoutMs: options.timeoutMs === undefined ? D.timeoutMs : v.positiveNumber('timeoutMs', options.timeoutMs),
      transform,
      precision: options.precision,
      maxPixels: options.maxPixels === undefined ? undefined : v.positiveInt('maxPixels', options.maxPixels),
    };
    model.precision(this.o.precision); // fails now for a precision the device cannot run
    this.model = model;
  }

  /** Images waiting for a batch. */
  get queued(): number {
    return this.queue.length;
  }

  /** The bound on `queued`. */
  get maxQueue(): number {
    return this.o.maxQueue;
  }

  /** Whether `drain()` was called (new calls are refused). */
  get isDraining(): boolean {
    return this.draining;
  }

  /** The model answering now. */
  get current(): Model {
    return this.model;
  }

  /** Seconds after which a refused caller may retry: the queue's length over the recent rate, at least 1. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.rate > 0 ? this.queue.length / this.rate : 1));
  }

  /**
   * Whether a call made now would be refused: the BusyError it would get (counted in `stats.shed` when the queue is
   * full), else undefined. An HTTP front asks before reading a request's body.
   */
  refusal(): BusyError | undefined {
    if (this.draining) return new BusyError('the predictor is draining: no new work is accepted', this.retryAfterSeconds());
    if (this.queue.length < this.o.maxQueue) return undefined;
    this.stats.shed++;
    return new BusyError(`busy: ${this.queue.length} images are waiting (maxQueue ${this.o.maxQueue})`, this.retryAfterSeconds());
  }

  /**
   * Top-k classes of one image, computed in a batch with other calls: a file path or an encoded JPEG/PNG Buffer
   * (decoded and transformed natively), or an image you decoded and preprocessed yourself — `{ data: Float32Array,
   * shape: [3, H, W] }`, the model's input as is (the transform is not applied; batched with images of its size).
   */
  predict(input: BatchInput, options: BatchPredictOptions = {}): Promise<Prediction[]> {
    try {
      const refused = this.refusal();
      if (refused) throw refused;
      const decoded = typeof input !== 'string' && !Buffer.isBuffer(input) ? preprocessed(input) : undefined;
      const o = v.plainObject('options', options);
      v.knownKeys('options', o, ['topk', 'signal', 'timeoutMs']);
      const numClasses = this.model.numClasses;
      const topk = options.topk === undefined ? Math.min(BATCH_PREDICTOR_DEFAULTS.topk, numClasses) : v.positiveInt('topk', options.topk);
      if (topk > numClasses) throw v.invalid('topk', `integer in 1..${numClasses}`, topk);
      const timeoutMs = options.timeoutMs === undefined ? this.o.timeoutMs : v.positiveNumber('timeoutMs', options.timeoutMs);
      return new Promise<Prediction[]>((resolve, reject) => {
        const source = decoded ? { tensor: Promise.resolve(decoded) } : { input: input as string | Buffer };
        this.queue.push({ ...source, topk, deadline: performance.now() + timeoutMs, signal: options.signal, resolve, reject });
        this.decodeAhead();
        this.schedule();
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Answers with `model` from the next batch on; resolves with the previous model once the batch computing now (if
   * any) has finished with it, so the caller can dispose it. No call fails because of the swap.
   */
  async swap(model: Model): Promise<Model> {
    if (!(model instanceof Model)) throw v.invalid('model', 'Model', model);
    if (model.numClasses !== this.model.numClasses) throw new InvalidOptionError('model', `the new model has ${model.numClasses} classes, the current one ${this.model.numClasses}`);
    const old = this.model;
    this.model = model;
    await this.running;
    return old;
  }

  /** Refuses new calls and resolves when every accepted call has been answered. */
  async drain(): Promise<void> {
    this.draining = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (;;) {
      if (!this.running) this.flush(); // answers the queue, or leaves it empty
      if (!this.running) return;
      await this.running;
    }
  }

  /**
   * Starts decoding (on a native thread, while the current batch computes) the images of the next two batches: the
   * rest wait as encoded bytes, so a long queue neither holds thousands of decoded images nor decodes calls that
   * are dropped at their deadline.
   */
  private decodeAhead(): void {
    const t = this.o.transform;
    for (const job of this.queue.slice(0, 2 * this.o.maxBatch)) {
      if (job.tensor || job.input === undefined) continue;
      job.tensor = t.apply(job.input, { maxPixels: this.o.maxPixels, fastDecodeMinSide: t.resizeFloor }) as Promise<TensorData>;
      job.tensor.catch(() => undefined); // observed in run(); a call dropped before then must not leave an unhandled rejection
    }
  }

  private schedule(now = false): void {
    if (this.running) return; // the batch running now picks the queue up when it ends
    if (now || this.queue.length >= this.o.maxBatch || this.o.maxDelayMs === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.flush();
    } else this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.o.maxDelayMs);
  }

  /** Drops aborted and expired calls before they cost a forward pass. */
  private prune(): void {
    const now = performance.now();
    this.queue = this.queue.filter((j) => !this.dropped(j, now));
  }

  /** Rejects `job` (and counts it) when it was aborted or its deadline passed; whether it did. */
  private dropped(job: Job, now: number): boolean {
    if (job.signal?.aborted) {
      this.stats.cancelled++;
      job.reject(Object.assign(new Error('the call was aborted before it was computed'), { name: 'AbortError', code: 'ABORT_ERR' }));
      return true;
    }
    if (now > job.deadline) {
      this.stats.expired++;
      job.reject(new TimeoutError('the deadline passed before the image was computed; it was dropped'));
      return true;
    }
    return false;
  }

  private flush(): void {
    if (this.running) return;
    this.prune();
    if (!this.queue.length) return;
    this.decodeAhead(); // the batch's own images, when pruning moved undecoded ones up
    const batch = this.queue.splice(0, this.o.maxBatch);
    this.decodeAhead();
    this.running = this.run(batch).finally(() => {
      this.running = undefined;
      if (this.queue.length) this.schedule(this.queue.length >= this.o.maxBatch || this.draining);
    });
  }

  private async run(batch: Job[]): Promise<void> {
    const tensors = await Promise.allSettled(batch.map((j) => j.tensor!));
    const ready: { job: Job; t: TensorData }[] = [];
    const now = performance.now();
    batch.forEach((job, i) => {
      const r = tensors[i];
      if (r.status === 'rejected') {
        this.stats.failed++;
        job.reject(r.reason as Error);
      } else if (!this.dropped(job, now)) ready.push({ job, t: r.value });
    });
    // images of one size form one forward pass (a fixed-size transform gives one group)
    const groups = new Map<string, { job: Job; t: TensorData }[]>();
    for (const r of ready) {
      const key = r.t.shape.join('x');
      const group = groups.get(key);
      if (group) group.push(r);
      else groups.set(key, [r]);
    }
    for (const group of groups.values()) await this.forward(group);
  }

  private async forward(group: { job: Job; t: TensorData }[]): Promise<void> {
    const model = this.model;
    const per = group[0].t.data.length;
    const data = new Float32Array(per * group.length);
    group.forEach((g, i) => data.set(g.t.data, i * per));
    const t0 = performance.now();
    let logits: TensorData;
    try {
      logits = await model.forward(data, [group.length, ...group[0].t.shape], { precision: this.o.precision });
    } catch (e) {
      this.stats.failed += group.length;
      for (const g of group) g.job.reject(e as Error);
      return;
    }
    const seconds = (performance.now() - t0) / 1000;
    this.rate = this.rate ? 0.8 * this.rate + 0.2 * (group.length / seconds) : group.length / seconds;
    this.stats.batches++;
    this.stats.served += group.length;
    this.emit('batch', { size: group.length, seconds } satisfies BatchEvent);
    const classes = logits.shape[1];
    group.forEach((g, i) => g.job.resolve(topK(logits.data.subarray(i * classes, (i + 1) * classes), g.job.topk, model.classes)));
  }
}

/** Softmax of one row of logits (in float64), its k most probable classes. */
function topK(row: Float32Array, k: number, classes: readonly string[] | undefined): Prediction[] {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  const p = new Float64Array(row.length);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += p[i] = Math.exp(row[i] - max);
  const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a] || a - b);
  return order.slice(0, k).map((index) => ({ index, label: classes?.[index] ?? String(index), probability: p[index] / sum }));
}

/** A caller's own preprocessed image: float32 `[3, H, W]` (copied: the caller may reuse its buffer). */
function preprocessed(input: unknown): TensorData {
  if (input === null || typeof input !== 'object' || !('data' in input) || !('shape' in input)) throw v.invalid('input', 'file path, Buffer or { data: Float32Array, shape: [3, H, W] }', input);
  const t = v.tensorInput((input as TensorData).data, (input as TensorData).shape, 3);
  if (t.shape[0] !== 3) throw v.invalid('input.shape', '[3, H, W]', t.shape);
  return { data: new Float32Array(t.data), shape: [...t.shape] };
}
