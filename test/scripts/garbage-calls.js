// Calls every function of the native addon and every method of every kind of object it returns (model, feature bank,
// trainer, loader, batch) with wrong arguments, then again after each object is disposed or released, in a plain Node
// process: none may terminate the process (a C++ exception escaping into N-API aborts it), and every error must reach
// JS as one of the library's typed errors (lib/native.ts maps them in one place). Prints one JSON line.
// usage: node test/scripts/garbage-calls.js
const { getNative } = require('../../dist/cjs/native');
const { TorchResNetError } = require('../../dist/cjs/errors');
const { DataLoader, ImageFolder, Model, encodeJpeg } = require('../../dist/cjs');
const { resolveTrainerOptions } = require('../../dist/cjs/trainer');
// garbage such as save('x', …) writes files: into a scratch folder, wherever the script is started from
const { mkdtempSync, rmSync } = require('node:fs');
const scratch = mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'tl-garbage-'));
process.chdir(scratch);
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

const ARGS = [[], [undefined], [null], [{}], [1, 2, 3], ['x', {}, 5], [[], [], [], []], [-1], [1e300], [{ paths: 5 }, 'not json', -3, {}]];
const SKIP = new Set();

(async () => {
  const n = getNative();
  const report = { calls: 0, threw: 0, rejected: 0, ok: 0, withoutCode: [], untyped: [], methods: {} };
  const call = async (name, fn, self) => {
    for (const args of ARGS) {
      report.calls++;
      try {
        const r = fn.apply(self, args);
        if (r && typeof r.then === 'function') {
          await Promise.race([r, new Promise((_, rej) => setTimeout(() => rej(Object.assign(new Error('pending'), { code: 'PENDING' })), 2000))]);
        }
        report.ok++;
      } catch (e) {
        if (!(e instanceof Error)) throw new Error(`${name}: threw a non-Error ${e}`);
        if (e.code === 'PENDING') continue;
        e.code ? report.threw++ : report.rejected++;
        report.methods[name] = (report.methods[name] ?? 0) + 1;
        if (!e.code && report.withoutCode.length < 200) report.withoutCode.push(`${name}: ${e.message}`);
        if (!(e instanceof TorchResNetError) && report.untyped.length < 200) report.untyped.push(`${name}: ${e.constructor.name} ${e.code} ${e.message}`);
      }
    }
  };
  const lib = await Model.create({ arch: 'squeezenet1_1', numClasses: 2 });
  const model = lib._handle();
  // a loader over two small images, and one of its batches
  const { mkdirSync, writeFileSync } = require('node:fs');
  const img = await encodeJpeg({ data: new Uint8Array(3 * 32 * 32).fill(90), shape: [3, 32, 32] });
  for (const c of ['a', 'b']) {
    mkdirSync(`data/${c}`, { recursive: true });
    writeFileSync(`data/${c}/1.jpg`, img);
  }
  const loader = new DataLoader(await ImageFolder.open('data'), { batchSize: 2 }).loader;
  await loader.start(0);
  const batch = await loader.next();
  const objects = {
    model,
    featureBank: new n.NativeFeatureBank(model),
    trainer: new n.NativeTrainer(model, resolveTrainerOptions(lib, {}).native),
    loader,
    batch,
  };
  for (const [name, v] of Object.entries(n)) {
    if (typeof v !== 'function' || SKIP.has(name) || /^Native/.test(name)) continue;
    await call(name, v, n);
  }
  const methods = (obj) => Object.getOwnPropertyNames(Object.getPrototypeOf(obj)).filter((m) => m !== 'constructor' && m !== 'dispose' && m !== 'release');
  for (const [oname, obj] of Object.entries(objects)) for (const m of methods(obj)) await call(`${oname}.${m}`, obj[m], obj);
  // after release / dispose: every method of a batch and a model must fail with a typed error
  batch.release();
  model.dispose();
  for (const [oname, obj] of Object.entries({ batch, model })) for (const m of methods(obj)) await call(`${oname}.${m} (released)`, obj[m], obj);
  report.notFailing = Object.entries({ batch, model }).flatMap(([o, obj]) => methods(obj).filter((m) => !report.methods[`${o}.${m} (released)`]).map((m) => `${o}.${m}`));
  report.objects = Object.keys(objects);
  for (const ctor of ['NativeModel', 'NativeBatch', 'NativeLoader', 'NativeTrainer', 'NativeFeatureBank']) {
    for (const args of ARGS) {
      report.calls++;
      try {
        new n[ctor](...args);
        report.ok++;
      } catch (e) {
        if (!(e instanceof Error)) throw e;
        report.threw++;
      }
    }
  }
  console.log(JSON.stringify(report));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
