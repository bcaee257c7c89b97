// An HTTP inference service on node:http: POST an image, get the top-k classes. Concurrent requests are batched
// into one native predict call (the model runs one batch at a time; requests arriving meanwhile form the next).
//
//   npx tsx examples/serve.ts --model runs/food/best.pth --port 8080
//   curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' 'http://127.0.0.1:8080/predict?topk=3'
//
// Answers: 200 { predictions: [{ label, index, probability }] }; 400 undecodable image; 404/405 wrong route or
// method; 413 body over --max-bytes (counted while streaming); 415 a body that is not a JPEG or PNG; 503 with
// Retry-After when the queue holds --max-queue images or a request waited past --deadline-ms. GET /health describes
// the model and the load, and answers while predictions run (they run off the JS thread).
//
// Under overload the service sheds instead of growing: the queue is bounded, requests whose client went away are
// dropped before they reach the model, at most --max-connections sockets are open, a request must arrive within
// --request-timeout-ms (slow clients cannot hold sockets forever) and images over --max-pixels are refused by the
// decoder before it allocates.
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { Model, Prediction, TorchResNetError } from 'torch-resnet-tl';

interface Pending {
  image: Buffer;
  topk: number;
  deadline: number;
  signal?: AbortSignal;
  resolve: (p: Prediction[]) => void;
  reject: (e: Error) => void;
}

/** The queue is full or the request waited too long: answer 503 and tell the client when to retry. */
export class OverloadedError extends Error {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

export interface BatcherOptions {
  /** Images per native predict call. Default 32. */
  maxBatch?: number;
  /** How long the first request of a batch waits for company, in ms. Default 2. */
  maxWaitMs?: number;
  /** Images waiting (not yet running) at most; more are refused with OverloadedError. Default 4 × maxBatch. */
  maxQueue?: number;
  /** A request not started within this many ms is refused with OverloadedError. Default 10 000. */
  deadlineMs?: number;
  /** Decoder limit: images with more pixels are refused before decoding. Default 40 000 000. */
  maxPixels?: number;
}

/** Collects requests and runs them through `model.predict` in batches of up to `maxBatch`, with a bounded queue. */
export class PredictBatcher {
  private queue: Pending[] = [];
  private running = false;
  private timer?: NodeJS.Timeout;
  private readonly maxBatch: number;
  private readonly maxWaitMs: number;
  readonly maxQueue: number;
  private readonly deadlineMs: number;
  private readonly maxPixels: number;
  /** Images per second over the recent batches (for Retry-After). */
  private rate = 0;
  readonly stats = { served: 0, shed: 0, expired: 0, cancelled: 0 };

  constructor(
    private readonly model: Model,
    opts: BatcherOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 32;
    this.maxWaitMs = opts.maxWaitMs ?? 2;
    this.maxQueue = opts.maxQueue ?? 4 * this.maxBatch;
    this.deadlineMs = opts.deadlineMs ?? 10_000;
    this.maxPixels = opts.maxPixels ?? 40_000_000;
  }

  get queued(): number {
    return this.queue.length;
  }

  private retryAfter(): number {
    return Math.max(1, Math.ceil(this.rate > 0 ? this.queue.length / this.rate : 1));
  }

  /** Queues one image; `signal` aborts it while it waits (a client that went away). */
  predict(image: Buffer, topk: number, signal?: AbortSignal): Promise<Prediction[]> {
    if (this.queue.length >= this.maxQueue) {
      this.stats.shed++;
      return Promise.reject(new OverloadedError(`busy: ${this.queue.length} images are waiting`, this.retryAfter()));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ image, topk, deadline: performance.now() + this.deadlineMs, signal, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.maxWaitMs);
    });
  }

  /** Drops cancelled and expired entries before they cost a prediction. */
  private prune(): void {
    const now = performance.now();
    this.queue = this.queue.filter((p) => {
      if (p.signal?.aborted) {
        this.stats.cancelled++;
        p.reject(new Error('client went away'));
        return false;
      }
      if (now > p.deadline) {
        this.stats.expired++;
        p.reject(new OverloadedError(`waited over ${this.deadlineMs} ms`, this.retryAfter()));
        return false;
      }
      return true;
    });
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running) return;
    this.prune();
    if (this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.maxBatch);
    this.running = true;
    this.run(batch).finally(() => {
      this.running = false;
      if (this.queue.length) this.flush();
    });
  }

  private async run(batch: Pending[]): Promise<void> {
    const topk = Math.max(...batch.map((p) => p.topk));
    const t0 = performance.now();
    try {
      const out = (await this.model.predict(batch.map((p) => p.image), { topk, batchSize: batch.length, maxPixels: this.maxPixels })) as Prediction[][];
      const seconds = (performance.now() - t0) / 1000;
      this.rate = this.rate ? 0.8 * this.rate + 0.2 * (batch.length / seconds) : batch.length / seconds;
      this.stats.served += batch.length;
      batch.forEach((p, i) => p.resolve(out[i].slice(0, p.topk)));
    } catch (e) {
      if (batch.length === 1) return batch[0].reject(e as Error);
      // one bad image fails the whole call: isolate it by predicting one by one
      for (const p of batch) {
        try {
          p.resolve(((await this.model.predict([p.image], { topk: p.topk, maxPixels: this.maxPixels })) as Prediction[][])[0]);
        } catch (err) {
          p.reject(err as Error);
        }
      }
    }
  }
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > maxBytes) {
      req.resume();
      return reject(new HttpError(413, `image of ${declared} bytes exceeds the limit of ${maxBytes} bytes`));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        req.removeAllListeners('data');
        req.resume();
        reject(new HttpError(413, `image exceeds the limit of ${maxBytes} bytes`));
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const isImage = (b: Buffer): boolean =>
  (b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) || (b.length > 8 && b.readUInt32BE(0) === 0x89504e47);

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

export interface ServerOptions extends BatcherOptions {
  model: string;
  host?: string;
  port?: number;
  /** Request body limit in bytes, enforced while streaming. Default 10 MiB. */
  maxBytes?: number;
  /** Open sockets at most (node's server.maxConnections). Default 1024. */
  maxConnections?: number;
  /** A request (headers and body) must arrive within this many ms. Default 30 000. */
  requestTimeoutMs?: number;
  precision?: 'auto' | 'fp32' | 'bf16';
}

export async function startServer(opts: ServerOptions) {
  const model = await Model.load(opts.model, { precision: opts.precision });
  const batcher = new PredictBatcher(model, opts);
  const maxBytes = opts.maxBytes ?? 10 * 1024 * 1024;
  const server = createServer({ requestTimeout: opts.requestTimeoutMs ?? 30_000, headersTimeout: Math.min(opts.requestTimeoutMs ?? 30_000, 10_000) }, async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname === '/health') {
        if (req.method !== 'GET') throw new HttpError(405, 'use GET /health');
        return send(res, 200, {
          ok: true,
          arch: model.arch,
          numClasses: model.numClasses,
          classes: model.classes ?? null,
          load: { queued: batcher.queued, maxQueue: batcher.maxQueue, connections: await connections(), ...batcher.stats },
          rssBytes: process.memoryUsage().rss,
        });
      }
      if (url.pathname !== '/predict') throw new HttpError(404, 'routes: POST /predict, GET /health');
      if (req.method !== 'POST') throw new HttpError(405, 'use POST /predict with the image as the request body');
      const topk = Number(url.searchParams.get('topk') ?? Math.min(5, model.numClasses));
      if (!Number.isInteger(topk) || topk < 1 || topk > model.numClasses) throw new HttpError(400, `topk must be an integer in 1..${model.numClasses}`);
      const body = await readBody(req, maxBytes);
      if (body.length === 0) throw new HttpError(400, 'empty body: send the image bytes');
      if (!isImage(body)) throw new HttpError(415, 'the body is not a JPEG or PNG image');
      // a client that disconnects while its image waits is dropped from the queue
      const gone = new AbortController();
      res.on('close', () => gone.abort());
      const predictions = await batcher.predict(body, topk, gone.signal);
      send(res, 200, { predictions });
    } catch (e) {
      if (e instanceof HttpError) return send(res, e.status, { error: e.message });
      if (e instanceof OverloadedError) return send(res, 503, { error: e.message }, { 'retry-after': String(e.retryAfterSeconds) });
      if (e instanceof TorchResNetError && e.code === 'ERR_DATASET') return send(res, 400, { error: `cannot decode the image: ${e.message}` });
      send(res, 500, { error: (e as Error).message });
    }
  });
  server.maxConnections = opts.maxConnections ?? 1024;
  const connections = () => new Promise<number>((resolve) => server.getConnections((_, n) => resolve(n ?? 0)));
  await new Promise<void>((resolve) => server.listen(opts.port ?? 8080, opts.host ?? '127.0.0.1', resolve));
  return { server, model, batcher };
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
      'max-batch': { type: 'string', default: '32' },
      'max-bytes': { type: 'string', default: String(10 * 1024 * 1024) },
      precision: { type: 'string', default: 'auto' },
      'max-queue': { type: 'string', default: '128' },
      'deadline-ms': { type: 'string', default: '10000' },
      'max-pixels': { type: 'string', default: '40000000' },
      'max-connections': { type: 'string', default: '1024' },
      'request-timeout-ms': { type: 'string', default: '30000' },
    },
  });
  if (!values.model) {
    console.error('usage: serve.ts --model <file saved by torch-resnet-tl> [--host 127.0.0.1] [--port 8080] [--max-batch 32] [--max-bytes N] [--precision auto|fp32|bf16]\n' +
      '       [--max-queue 128] [--deadline-ms 10000] [--max-pixels 40000000] [--max-connections 1024] [--request-timeout-ms 30000]');
    process.exit(2);
  }
  startServer({
    model: values.model,
    host: values.host,
    port: Number(values.port),
    maxBatch: Number(values['max-batch']),
    maxBytes: Number(values['max-bytes']),
    precision: values.precision as 'auto' | 'fp32' | 'bf16',
    maxQueue: Number(values['max-queue']),
    deadlineMs: Number(values['deadline-ms']),
    maxPixels: Number(values['max-pixels']),
    maxConnections: Number(values['max-connections']),
    requestTimeoutMs: Number(values['request-timeout-ms']),
  }).then(
    ({ server, model }) => {
      const a = server.address();
      const port = typeof a === 'object' && a ? a.port : values.port;
      console.log(`serving ${model.arch} (${model.numClasses} classes) on http://${values.host}:${port}`);
    },
    (e) => {
      console.error(`error: ${(e as Error).message}`);
      process.exit(1);
    },
  );
}
