// `serve`: a saved model behind HTTP with dynamic batching (BatchPredictor + PredictionServer). SIGTERM / SIGINT
// drain (accepted predictions finish, new ones get 503) and exit 0; SIGHUP or POST /admin/reload (loopback clients
// only) reloads the model file with no failed request during the swap.
import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { Model, PRECISIONS, Precision } from '../model';
import { exitProcessNow } from '../native';
import { BATCH_PREDICTOR_DEFAULTS, BatchPredictor } from '../serve/predictor';
import { PredictionServer, SERVER_DEFAULTS } from '../serve/http';
import { EXIT, int, nonNegative, positive } from './common';
import { Output } from './progress';

export const SERVE_DEFAULTS = { host: '127.0.0.1', port: 8080, graceMs: 30_000 };

export function addServeCommand(program: Command, out: () => Output): void {
  const B = BATCH_PREDICTOR_DEFAULTS;
  program
    .command('serve')
    .description('serve a saved model over HTTP: POST /predict (image body → top-k JSON), GET /healthz, /readyz, /metrics (Prometheus), POST /admin/reload (loopback only; or SIGHUP); concurrent requests are batched')
    .requiredOption('--model <file>', 'a .pth/.safetensors saved by torch-resnet-tl')
    .option('--host <addr>', `address to listen on (default ${SERVE_DEFAULTS.host})`)
    .option('--port <n>', `port (0: any free one; default ${SERVE_DEFAULTS.port})`, int(0))
    .option('--max-batch <n>', `images per forward pass at most (1: no batching; default ${B.maxBatch})`, int(1))
    .option('--max-delay-ms <ms>', `how long the first image of a batch waits for company (0: none; default ${B.maxDelayMs})`, nonNegative)
    .option('--max-queue <n>', `images waiting at most; more get 503 + Retry-After at once (default ${B.maxQueue})`, int(1))
    .option('--timeout-ms <ms>', `a request not computed within this time is dropped with 503 (default ${B.timeoutMs})`, positive)
    .option('--max-bytes <n>', `request body limit (default ${SERVER_DEFAULTS.maxBytes})`, int(1))
    .option('--request-timeout-ms <ms>', `headers and body must arrive within this time (default ${SERVER_DEFAULTS.requestTimeoutMs})`, int(1))
    .option('--keep-alive-ms <ms>', `an idle keep-alive connection is closed after this time (default ${SERVER_DEFAULTS.keepAliveMs})`, int(1))
    .option('--grace-ms <ms>', `on SIGTERM/SIGINT, how long accepted requests may take to finish (default ${SERVE_DEFAULTS.graceMs})`, int(0))
    .addOption(new Option('--precision <p>', "'auto' = bf16 where the CPU has BF16 (default: the model's)").choices([...PRECISIONS]))
    .action(async (o) => {
      const output = out();
      const file = resolve(o.model);
      const precision = o.precision as Precision | undefined;
      const predictor = new BatchPredictor(await Model.load(file, { precision }), { maxBatch: o.maxBatch, maxDelayMs: o.maxDelayMs, maxQueue: o.maxQueue, timeoutMs: o.timeoutMs });
      const server = new PredictionServer(predictor, { maxBytes: o.maxBytes, requestTimeoutMs: o.requestTimeoutMs, keepAliveMs: o.keepAliveMs, reload: () => reload(file, predictor, output, precision) });
      const addr = await server.listen(o.port ?? SERVE_DEFAULTS.port, o.host ?? SERVE_DEFAULTS.host);
      const m = predictor.current;
      process.stdout.write(`serving ${m.arch} (${m.numClasses} classes) from ${file} on http://${addr.address}:${addr.port}\n`);
      process.on('SIGHUP', () => void reload(file, predictor, output, precision).catch(() => undefined));
      const grace = o.graceMs ?? SERVE_DEFAULTS.graceMs;
      const finished = await new Promise<boolean>((done) => {
        let stopping = false;
        const stop = (sig: 'SIGTERM' | 'SIGINT') => {
          if (stopping) {
            // a second signal: stop waiting for the accepted requests
            process.stderr.write(`${sig} again: exiting now\n`);
            exitProcessNow(sig === 'SIGINT' ? EXIT.interrupted : EXIT.terminated);
          }
          stopping = true;
          output.log(`${sig}: draining (new requests get 503; accepted ones finish within ${grace} ms; ${sig} again exits now)`);
          void server.drain(grace).then(done);
        };
        process.on('SIGTERM', () => stop('SIGTERM')).on('SIGINT', () => stop('SIGINT'));
      });
      process.removeAllListeners('SIGHUP');
      predictor.current.dispose();
      if (!finished) throw new ServeError(`grace period of ${grace} ms over: closed with accepted requests unanswered`);
      output.log('drained: every accepted request was answered');
    });
}

/** The drain's grace period ended before every accepted request was answered (exit 1). */
class ServeError extends Error {
  readonly code = 'ERR_DRAIN_TIMEOUT';
}

/**
 * Loads the model file again and swaps it in; the old model is disposed once its last batch is done. A failure is
 * logged and rethrown (SIGHUP ignores it, POST /admin/reload answers 500); the previous model keeps serving.
 */
async function reload(file: string, predictor: BatchPredictor, output: Output, precision: Precision | undefined): Promise<{ reloaded: string; arch: string; numClasses: number }> {
  let fresh: Model | undefined;
  try {
    fresh = await Model.load(file, { precision });
    const old = await predictor.swap(fresh);
    old.dispose();
    output.log(`reloaded ${file}`);
    return { reloaded: file, arch: fresh.arch, numClasses: fresh.numClasses };
  } catch (e) {
    if (fresh && predictor.current !== fresh) fresh.dispose();
    output.log(`reload of ${file} failed, still serving the previous model: ${(e as Error).message}`);
    throw e;
  }
}
