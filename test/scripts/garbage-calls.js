// Calls every function of the native addon and every method of its objects with wrong arguments, in a plain Node
// process: none may terminate the process (a C++ exception escaping into N-API aborts it). Prints one JSON line.
// usage: node test/scripts/garbage-calls.js
const { getNative } = require('../../dist/cjs/native');
// garbage such as save('x', …) writes files: into a scratch folder, wherever the script is started from
const { mkdtempSync, rmSync } = require('node:fs');
const scratch = mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'tl-garbage-'));
process.chdir(scratch);
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

const ARGS = [[], [undefined], [null], [{}], [1, 2, 3], ['x', {}, 5], [[], [], [], []], [-1], [1e300], [{ paths: 5 }, 'not json', -3, {}]];
const SKIP = new Set();

(async () => {
  const n = getNative();
  const report = { calls: 0, threw: 0, rejected: 0, ok: 0, withoutCode: [] };
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
        if (!e.code && report.withoutCode.length < 200) report.withoutCode.push(`${name}: ${e.message}`);
      }
    }
  };
  const model = await n.createModel({ arch: 'squeezenet1_1', numClasses: 2, dropout: 0, device: 'cpu', channelsLast: false, head: 'torchvision' });
  const objects = { model, featureBank: new n.NativeFeatureBank(model) };
  for (const [name, v] of Object.entries(n)) {
    if (typeof v !== 'function' || SKIP.has(name) || /^Native/.test(name)) continue;
    await call(name, v, n);
  }
  for (const [oname, obj] of Object.entries(objects)) {
    for (const m of Object.getOwnPropertyNames(Object.getPrototypeOf(obj))) {
      if (m === 'constructor' || m === 'dispose') continue;
      await call(`${oname}.${m}`, obj[m], obj);
    }
  }
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
  model.dispose();
  console.log(JSON.stringify(report));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
