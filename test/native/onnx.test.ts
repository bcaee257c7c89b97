// ONNX export: every arch of the zoo (both heads of squeezenet1_1) written, checked by PyPI's onnx checker, and run
// with onnxruntime-node: logits equal ours (fp32) for batch sizes 1 and 3 from one file.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ARCHS, manualSeed, Model, ONNX_DEFAULTS } from '../../lib';
import { ROOT } from '../helpers';

const tmp = mkdtempSync(join(tmpdir(), 'tl-onnx-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const CHECKER = join(ROOT, '.onnx', 'venv', 'bin', 'python');

function check(path: string): string {
  return execFileSync(CHECKER, ['-c', 'import onnx, sys; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); print(m.ir_version, m.opset_import[0].version)', path], { encoding: 'utf8' }).trim();
}

const cases = [...ARCHS.map((arch) => [arch, 'torchvision'] as const), ['squeezenet1_1', 'linear'] as const];

describe('ONNX export', () => {
  beforeAll(() => {
    // scripts/setup.sh --test installs it; missing means the set-up did not run
    if (!existsSync(CHECKER)) throw new Error(`${CHECKER} missing: run scripts/setup.sh --test`);
  });

  test.each(cases)('%s (%s head): the checker accepts it; onnxruntime gives our logits for batch 1 and 3', async (arch, head) => {
    manualSeed(7);
    const model = await Model.create({ arch, numClasses: 7, head, classes: ['a', 'b', 'c', 'd', 'e', 'f', 'g'] });
    const path = join(tmp, `${arch}-${head}.onnx`);
    const r = await model.exportOnnx(path);
    expect(r.opset).toBe(ONNX_DEFAULTS.opset);
    expect(check(path)).toBe(`8 ${ONNX_DEFAULTS.opset}`);
    const inputs = [1, 3].map((n) => Float32Array.from({ length: n * 3 * 64 * 64 }, (_, i) => Math.sin(i * 0.37 + n)));
    inputs.forEach((x, k) => writeFileSync(join(tmp, `x${k}.f32`), x));
    // onnxruntime-node in plain Node, one session for both batch sizes
    const run = JSON.parse(execFileSync(process.execPath, [join(ROOT, 'test', 'scripts', 'ort-run.js'), path, join(tmp, 'y'), `${join(tmp, 'x0.f32')}:1x3x64x64`, `${join(tmp, 'x1.f32')}:3x3x64x64`], { encoding: 'utf8' }));
    expect(run).toEqual({ inputs: ['input'], outputs: ['logits'], dims: [[1, 7], [3, 7]] });
    let worst = 0;
    for (const [k, n] of [1, 3].entries()) {
      const ours = await model.forward(inputs[k], [n, 3, 64, 64], { precision: 'fp32' });
      const b = readFileSync(join(tmp, `y-${k}.f32`));
      const theirs = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
      let scale = 0;
      theirs.forEach((t) => (scale = Math.max(scale, Math.abs(t))));
      theirs.forEach((t, i) => (worst = Math.max(worst, Math.abs(t - ours.data[i]) / scale)));
    }
    console.log(`${arch} (${head}): ${(r.bytes / 2 ** 20).toFixed(1)} MiB, ${r.nodes} nodes, scaled max |Δ| ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(1e-4);
    model.dispose();
    rmSync(path); // the large archs write hundreds of MB each
  }, 240_000);

  test('metadata, a fixed batch, other opsets; bad options are refused', async () => {
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: ['ants', 'bees'] });
    const path = join(tmp, 'fixed.onnx');
    await model.exportOnnx(path, { dynamicBatch: false, batchSize: 2, opset: 13 });
    const meta = execFileSync(CHECKER, ['-c', 'import onnx, sys, json; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m); print(json.dumps({p.key: p.value for p in m.metadata_props})); print(m.graph.input[0].type.tensor_type.shape.dim[0].dim_value, m.opset_import[0].version)', path], { encoding: 'utf8' }).trim().split('\n');
    expect(JSON.parse(meta[0])).toMatchObject({ arch: 'squeezenet1_1', head: 'torchvision', num_classes: '2', classes: '["ants","bees"]' });
    expect(meta[1]).toBe('2 13');
    await expect(model.exportOnnx(join(tmp, 'x.onnx'), { opset: 9 })).rejects.toThrow(/opset/);
    await expect(model.exportOnnx(join(tmp, 'x.pb'))).rejects.toThrow(/\.onnx/);
    await expect(model.exportOnnx(join(tmp, 'x.onnx'), { batchSize: 4 })).rejects.toThrow(/batchSize/);
  }, 60_000);
});
