// An HTTP inference service on node:http: POST an image, get the top-k classes. Concurrent requests are batched
// into one native predict call (the model runs one batch at a time; requests arriving meanwhile form the next).
//
//   npx tsx examples/serve.ts --model runs/food/best.pth --port 8080
//   curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' 'http://127.0.0.1:8080/predict?topk=3'
//
// Answers: 200 { predictions: [{ label, index, probability }] }; 400 undecodable image; 404/405 wrong route or
// method; 413 body over --max-bytes; 415 a body that is not a JPEG or PNG. GET /health describes the model.
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { Model, Prediction, TorchResNetError } from 'torch-resnet-tl';

interface Pending {
  image: Buffer;
  topk: number;
  resolve: (p: Prediction[]) => void;
  reject: (e: Error) => void;
}

/** Collects requests and runs them through `model.predict` in batches of up to `maxBatch`. */
export class PredictBatcher {
  private queue: Pending[] = [];
  private running = false;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly model: Model,
    private readonly maxBatch = 32,
    private readonly maxWaitMs = 2,
  ) {}

  predict(image: Buffer, topk: number): Promise<Prediction[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ image, topk, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.maxWaitMs);
    });
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.maxBatch);
    this.running = true;
    this.run(batch).finally(() => {
      this.running = false;
      if (this.queue.length) this.flush();
    });
  }

  private async run(batch: Pending[]): Promise<void> {
    const topk = Math.max(...batch.map((p) => p.topk));
    try {
      const out = (await this.model.predict(batch.map((p) => p.image), { topk, batchSize: batch.length })) as Prediction[][];
      batch.forEach((p, i) => p.resolve(out[i].slice(0, p.topk)));
    } catch (e) {
      if (batch.length === 1) return batch[0].reject(e as Error);
      // one bad image fails the whole call: isolate it by predicting one by one
      for (const p of batch) {
        try {
          p.resolve(((await this.model.predict([p.image], { topk: p.topk })) as Prediction[][])[0]);
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

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startServer(opts: { model: string; host?: string; port?: number; maxBatch?: number; maxBytes?: number; precision?: 'auto' | 'fp32' | 'bf16' }) {
  const model = await Model.load(opts.model, { precision: opts.precision });
  const batcher = new PredictBatcher(model, opts.maxBatch ?? 32);
  const maxBytes = opts.maxBytes ?? 10 * 1024 * 1024;
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname === '/health') {
        if (req.method !== 'GET') throw new HttpError(405, 'use GET /health');
        return send(res, 200, { ok: true, arch: model.arch, numClasses: model.numClasses, classes: model.classes ?? null });
      }
      if (url.pathname !== '/predict') throw new HttpError(404, 'routes: POST /predict, GET /health');
      if (req.method !== 'POST') throw new HttpError(405, 'use POST /predict with the image as the request body');
      const topk = Number(url.searchParams.get('topk') ?? Math.min(5, model.numClasses));
      if (!Number.isInteger(topk) || topk < 1 || topk > model.numClasses) throw new HttpError(400, `topk must be an integer in 1..${model.numClasses}`);
      const body = await readBody(req, maxBytes);
      if (body.length === 0) throw new HttpError(400, 'empty body: send the image bytes');
      if (!isImage(body)) throw new HttpError(415, 'the body is not a JPEG or PNG image');
      const predictions = await batcher.predict(body, topk);
      send(res, 200, { predictions });
    } catch (e) {
      if (e instanceof HttpError) return send(res, e.status, { error: e.message });
      if (e instanceof TorchResNetError && e.code === 'ERR_DATASET') return send(res, 400, { error: `cannot decode the image: ${e.message}` });
      send(res, 500, { error: (e as Error).message });
    }
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 8080, opts.host ?? '127.0.0.1', resolve));
  return { server, model };
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
    },
  });
  if (!values.model) {
    console.error('usage: serve.ts --model <file saved by torch-resnet-tl> [--host 127.0.0.1] [--port 8080] [--max-batch 32] [--max-bytes N] [--precision auto|fp32|bf16]');
    process.exit(2);
  }
  startServer({
    model: values.model,
    host: values.host,
    port: Number(values.port),
    maxBatch: Number(values['max-batch']),
    maxBytes: Number(values['max-bytes']),
    precision: values.precision as 'auto' | 'fp32' | 'bf16',
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
