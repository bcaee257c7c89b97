// Dynamic batching behind your own HTTP route. The packaged service is `npx torch-resnet-tl serve --model best.pth`
// (health, readiness, metrics, drain, reload: lib/serve/http.ts); this is the same BatchPredictor in a few lines of
// node:http — the shape it takes behind express or fastify. Concurrent requests share one forward pass.
//
//   npx tsx examples/serve.ts runs/ants/best.pth 8080
//   curl --data-binary @photo.jpg http://127.0.0.1:8080/
import { createServer } from 'node:http';
import { BatchPredictor, errorResponse, Model } from 'torch-resnet-tl';

async function main(modelPath: string, port: number): Promise<void> {
  const predictor = new BatchPredictor(await Model.load(modelPath), { maxBatch: 32, maxDelayMs: 5, maxQueue: 128 });
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    try {
      const predictions = await predictor.predict(Buffer.concat(chunks), { topk: Math.min(3, predictor.current.numClasses) });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ predictions }));
    } catch (e) {
      // typed errors → status: ERR_BUSY (queue full) and ERR_TIMEOUT (deadline passed) are 503 + Retry-After
      const r = errorResponse(e, predictor);
      res.writeHead(r.status, { 'content-type': 'application/json', ...r.headers }).end(JSON.stringify(r.body));
    }
  });
  server.listen(port, '127.0.0.1', () => {
    const a = server.address();
    console.log(`serving on http://127.0.0.1:${typeof a === 'object' && a ? a.port : port}`);
  });
}

main(process.argv[2], Number(process.argv[3] ?? 8080)).catch((e) => {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
});
