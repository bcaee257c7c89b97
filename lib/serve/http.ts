// The HTTP face of a BatchPredictor (node:http): POST /predict, GET /healthz, /readyz, /metrics (Prometheus text,
// prom-client). Every request gets an HTTP answer: over the queue bound or while draining it is 503 with
// Retry-After, at once, before the body is read (which is then discarded).
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { TorchResNetError } from '../errors';
import * as v from '../validate';
import { BatchEvent, BatchPredictor } from './predictor';

export const SERVER_DEFAULTS = { maxBytes: 10 * 1024 * 1024, requestTimeoutMs: 30_000, keepAliveMs: 65_000, backlog: 4096 };

export interface PredictionServerOptions {
  /** Request body limit in bytes, enforced while streaming (413 past it). Default 10 MiB. */
  maxBytes?: number;
  /** Headers and body must arrive within this many ms (slow clients cannot hold sockets). Default 30 000. */
  requestTimeoutMs?: number;
  /**
   * An idle keep-alive connection is closed after this many ms (advertised as `Keep-Alive: timeout=`). Default 65 000:
   * longer than the usual proxy idle timeout (60 s) so the proxy closes first, and long enough that a client reusing
   * a connection after a pause does not race the close (a POST on a socket the server is closing fails, unretried).
   */
  keepAliveMs?: number;
  /**
   * `POST /admin/reload`, answered for loopback clients only (403 otherwise, whatever address the server listens on):
   * runs this (e.g. load the model file again and `predictor.swap` it in) and answers 200 with what it resolves to, or
   * 500 `ERR_RELOAD` with its error (the previous model keeps serving). Without it the route is 404.
   */
  reload?: () => Promise<unknown>;
}

/** Whether a socket's remote address is this machine's loopback (127.0.0.0/8, ::1, IPv4-mapped 127.x). */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

/** An HTTP error with its status and a stable code for the JSON body. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const isImage = (b: Buffer): boolean =>
  (b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) || (b.length > 8 && b.readUInt32BE(0) === 0x89504e47);

/**
 * A node:http server answering for `predictor`. GET /healthz: alive, with the load (queue, connections, counts,
 * RSS); GET /readyz: 200 while taking work, 503 while draining; GET /metrics: Prometheus text; POST /predict[?topk=k]:
 * the image as the body, `{ predictions: [{ label, index, probability }] }` back. Errors are JSON
 * `{ error: { code, message } }`.
 */
export class PredictionServer {
  readonly server: Server;
  readonly registry = new Registry();
  private readonly maxBytes: number;
  private readonly reloadFn?: () => Promise<unknown>;
  private readonly requests: Counter<'status'>;
  private readonly latency: Histogram<'status'>;

  constructor(
    readonly predictor: BatchPredictor,
    options: PredictionServerOptions = {},
  ) {
    v.knownKeys('options', v.plainObject('options', options), ['maxBytes', 'requestTimeoutMs', 'keepAliveMs', 'reload']);
    if (options.reload !== undefined && typeof options.reload !== 'function') throw v.invalid('reload', 'function', options.reload);
    this.reloadFn = options.reload;
    this.maxBytes = options.maxBytes === undefined ? SERVER_DEFAULTS.maxBytes : v.positiveInt('maxBytes', options.maxBytes);
    const timeout = options.requestTimeoutMs === undefined ? SERVER_DEFAULTS.requestTimeoutMs : v.positiveInt('requestTimeoutMs', options.requestTimeoutMs);
    this.requests = new Counter({ name: 'tl_requests_total', help: 'Prediction requests by HTTP status', labelNames: ['status'], registers: [this.registry] });
    this.latency = new Histogram({ name: 'tl_request_duration_seconds', help: 'Prediction request latency by HTTP status', labelNames: ['status'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] });
    const batchSize = new Histogram({ name: 'tl_batch_size', help: 'Images per forward pass', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: [this.registry] });
    const batchSeconds = new Histogram({ name: 'tl_batch_duration_seconds', help: 'Seconds per forward pass', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [this.registry] });
    predictor.on('batch', (b: BatchEvent) => {
      batchSize.observe(b.size);
      batchSeconds.observe(b.seconds);
    });
    new Gauge({ name: 'tl_queue_depth', help: 'Images waiting for a batch', registers: [this.registry], collect() {
      this.set(predictor.queued);
    } });
    new Gauge({ name: 'tl_draining', help: '1 while the server drains', registers: [this.registry], collect() {
      this.set(predictor.isDraining ? 1 : 0);
    } });
    const keepAlive = options.keepAliveMs === undefined ? SERVER_DEFAULTS.keepAliveMs : v.positiveInt('keepAliveMs', options.keepAliveMs);
    this.server = createServer({ requestTimeout: timeout, headersTimeout: Math.min(timeout, 10_000), keepAliveTimeout: keepAlive }, (req, res) => void this.handle(req, res));
  }

  /** Listens on `port` (0: any free port) and `host`; resolves with the address. */
  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      // a deep accept queue: thousands of clients connecting at once wait for accept() instead of being reset
      this.server.listen({ port, host, backlog: SERVER_DEFAULTS.backlog }, () => resolve(this.server.address() as AddressInfo));
    });
  }

  /**
   * Stops taking work: new predictions get 503, /readyz 503; resolves when every accepted prediction has been
   * answered or `graceMs` passed (then false), and the server is closed.
   */
  async drain(graceMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      this.predictor.drain().then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(timer);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return done;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const t0 = performance.now();
    try {
      if (url.pathname === '/healthz') {
        const connections = await new Promise<number>((resolve) => this.server.getConnections((_, n) => resolve(n ?? 0)));
        const m = this.predictor.current;
        return this.get(req, res, 200, { ok: true, arch: m.arch, numClasses: m.numClasses, queued: this.predictor.queued, maxQueue: this.predictor.maxQueue, connections, rssBytes: process.memoryUsage().rss, ...this.predictor.stats });
      }
      if (url.pathname === '/readyz') {
        const ready = !this.predictor.isDraining;
        return this.get(req, res, ready ? 200 : 503, { ready, draining: !ready, queued: this.predictor.queued });
      }
      if (url.pathname === '/metrics') {
        if (req.method !== 'GET') throw new HttpError(405, 'ERR_METHOD', 'use GET /metrics');
        const text = await this.registry.metrics();
        res.writeHead(200, { 'content-type': this.registry.contentType, 'content-length': String(Buffer.byteLength(text)) });
        return void res.end(text);
      }
      if (url.pathname === '/admin/reload' && this.reloadFn) return await this.adminReload(req, res);
      if (url.pathname !== '/predict') throw new HttpError(404, 'ERR_NOT_FOUND', `routes: POST /predict, GET /healthz, /readyz, /metrics${this.reloadFn ? ', POST /admin/reload (loopback)' : ''}`);
      if (req.method !== 'POST') throw new HttpError(405, 'ERR_METHOD', 'use POST /predict with the image as the request body');
      const predictions = await this.predict(req, res, url);
      this.reply(res, 200, { predictions }, t0);
    } catch (e) {
      this.fail(res, e, t0);
    }
  }

  private async adminReload(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') throw new HttpError(405, 'ERR_METHOD', 'use POST /admin/reload');
    if (!isLoopback(req.socket.remoteAddress)) throw new HttpError(403, 'ERR_FORBIDDEN', 'the admin endpoint answers loopback clients only');
    let result: unknown;
    try {
      result = await this.reloadFn!();
    } catch (e) {
      throw new HttpError(500, 'ERR_RELOAD', `reload failed, still serving the previous model: ${(e as Error).message}`);
    }
    send(res, 200, result ?? { reloaded: true });
  }

  private get(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
    if (req.method !== 'GET') throw new HttpError(405, 'ERR_METHOD', `use GET ${req.url}`);
    send(res, status, body);
  }

  private async predict(req: IncomingMessage, res: ServerResponse, url: URL) {
    const p = this.predictor;
    // refused before the body is read: the client learns at once and the server spends nothing on it
    if (p.isDraining) throw new HttpError(503, 'ERR_DRAINING', 'the server is shutting down', { 'retry-after': '5' });
    const refused = p.refusal();
    if (refused) throw refused;
    const topkParam = url.searchParams.get('topk');
    const numClasses = p.current.numClasses;
    const topk = topkParam === null ? undefined : Number(topkParam);
    if (topk !== undefined && !(Number.isInteger(topk) && topk >= 1 && topk <= numClasses)) throw new HttpError(400, 'ERR_INVALID_OPTION', `topk must be an integer in 1..${numClasses}`);
    const body = await readBody(req, this.maxBytes);
    if (body.length === 0) throw new HttpError(400, 'ERR_EMPTY', 'empty body: send the image bytes');
    if (!isImage(body)) throw new HttpError(415, 'ERR_MEDIA_TYPE', 'the body is not a JPEG or PNG image');
    const gone = new AbortController(); // a client that goes away while its image waits is dropped from the queue
    res.on('close', () => gone.abort());
    return p.predict(body, { topk, signal: gone.signal });
  }

  private reply(res: ServerResponse, status: number, body: unknown, t0: number, headers: Record<string, string> = {}): void {
    this.requests.inc({ status: String(status) });
    this.latency.observe({ status: String(status) }, (performance.now() - t0) / 1000);
    send(res, status, body, headers);
  }

  private fail(res: ServerResponse, e: unknown, t0: number): void {
    const r = errorResponse(e, this.predictor);
    this.reply(res, r.status, r.body, t0, r.headers);
  }
}

/**
 * The HTTP answer for an error of `BatchPredictor.predict` (or of this module): 503 + Retry-After for ERR_BUSY and
 * ERR_TIMEOUT, 400 for an undecodable image or a bad option, 499 for an aborted call, else 500; the body is
 * `{ error: { code, message } }`. For your own route behind express/fastify.
 */
export function errorResponse(e: unknown, predictor?: BatchPredictor): { status: number; headers: Record<string, string>; body: { error: { code: string; message: string } } } {
  if (e instanceof HttpError) return { status: e.status, headers: e.headers, body: { error: { code: e.code, message: e.message } } };
  const err = e as Error & { code?: string; retryAfterSeconds?: number };
  const code = err.code ?? 'ERR_INTERNAL';
  const status = code === 'ERR_BUSY' || code === 'ERR_TIMEOUT' ? 503 : code === 'ERR_DATASET' || (e instanceof TorchResNetError && code === 'ERR_INVALID_OPTION') ? 400 : code === 'ABORT_ERR' ? 499 : 500;
  const headers: Record<string, string> = status === 503 ? { 'retry-after': String(err.retryAfterSeconds ?? predictor?.retryAfterSeconds() ?? 1) } : {};
  const message = code === 'ERR_DATASET' ? `cannot decode the image: ${err.message}` : err.message;
  return { status, headers, body: { error: { code, message } } };
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed || res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
  // a request refused before its body was read (or past the size limit): the body is discarded as it arrives and the
  // connection stays open. Closing a socket with unread bytes makes the kernel reset it, and the client — still
  // sending — loses this answer (a bare "fetch failed" instead of the 413). Past DRAIN_LIMIT_BYTES discarded the
  // connection is cut: nobody uploads that much to be refused.
  const req = res.req;
  if (!req.readableEnded) {
    let drained = 0;
    req.on('data', (c: Buffer) => {
      drained += c.length;
      if (drained > DRAIN_LIMIT_BYTES) req.socket.destroy();
    });
    req.resume();
  }
}

/** The most a refused request's body is read (and discarded) so that its client receives the answer. */
const DRAIN_LIMIT_BYTES = 64 * 1024 * 1024;

/** The request body, refused with 413 past `maxBytes` (declared or counted while streaming). */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > maxBytes) return reject(new HttpError(413, 'ERR_TOO_LARGE', `image of ${declared} bytes exceeds the limit of ${maxBytes} bytes`));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= maxBytes) return void chunks.push(c);
      req.removeAllListeners('data');
      reject(new HttpError(413, 'ERR_TOO_LARGE', `image exceeds the limit of ${maxBytes} bytes`));
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
