// Checkpoint I/O: round trips with PyTorch, the shared real weights, and hostile or broken files.
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model, ResNet, readStateDict, CheckpointError } from '../../lib';
import { fixture, maxAbsDiff, python, ROOT, sharedPath } from '../helpers';
import { spawnSync } from 'node:child_process';

const tmp = mkdtempSync(join(tmpdir(), 'tl-ckpt-'));

describe('round trips', () => {
  test('our .pth loads in PyTorch with strict keys and equal tensors; metadata travels', async () => {
    const model = await ResNet.create({ arch: 'resnet18', numClasses: 3, classes: ['a', 'b', 'c'] });
    const path = join(tmp, 'r18.pth');
    await model.save(path);
    const out = python(
      `
import sys, torch, torchvision, json, zipfile
sd = torch.load(sys.argv[1])
m = torchvision.models.resnet18(num_classes=3)
m.load_state_dict(sd, strict=True)
print(json.dumps({k: float(v.double().sum()) for k, v in sd.items()}))
`,
      [path],
    );
    const sums = JSON.parse(out) as Record<string, number>;
    const ours = await model.stateDict();
    for (const [k, t] of Object.entries(ours)) {
      let s = 0;
      for (let i = 0; i < t.data.length; i++) s += Number(t.data[i]);
      expect(Math.abs(s - sums[k])).toBeLessThan(1e-3 * Math.max(1, Math.abs(s)));
    }
    expect(Object.keys(sums).length).toBe(Object.keys(ours).length);
    const loaded = await Model.load(path);
    expect(loaded).toBeInstanceOf(ResNet);
    expect(loaded.arch).toBe('resnet18');
    expect(loaded.classes).toEqual(['a', 'b', 'c']);
    expect(loaded.numClasses).toBe(3);
    const again = await loaded.stateDict();
    for (const k of Object.keys(ours)) expect(maxAbsDiff(again[k].data, ours[k].data)).toBe(0);
    model.dispose();
    loaded.dispose();
    // atomic write: no temporary files left next to the target
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  test('.safetensors round-trips bit-exactly and readable by PyTorch users', async () => {
    const model = await Model.create({ arch: 'squeezenet1_1', weights: sharedPath('weights', 'squeezenet1_1-imagenet.pth') });
    const a = join(tmp, 'sq.safetensors');
    const b = join(tmp, 'sq2.safetensors');
    await model.save(a);
    const reloaded = await Model.load(a);
    await reloaded.save(b);
    const ta = await readStateDict(a);
    const tb = await readStateDict(b);
    expect(ta.keys).toEqual(tb.keys);
    for (const k of ta.keys) expect(Buffer.from(ta.tensors[k].data.buffer).equals(Buffer.from(tb.tensors[k].data.buffer))).toBe(true);
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    expect(ta.metadata.arch).toBe('squeezenet1_1');
    model.dispose();
    reloaded.dispose();
  });

  test('the shared squeezenet1_1 .pth and .safetensors load to identical tensors', async () => {
    const p = await readStateDict(sharedPath('weights', 'squeezenet1_1-imagenet.pth'));
    const s = await readStateDict(sharedPath('weights', 'squeezenet1_1-imagenet.safetensors'));
    expect([...p.keys].sort()).toEqual([...s.keys].sort());
    expect(p.keys.length).toBe(52);
    for (const k of p.keys) {
      expect(p.tensors[k].shape).toEqual(s.tensors[k].shape);
      expect(maxAbsDiff(p.tensors[k].data, s.tensors[k].data)).toBe(0);
    }
  });

  test('ImageNet weights into another numClasses keep the new head and say so', async () => {
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 5, weights: sharedPath('weights', 'squeezenet1_1-imagenet.pth') });
    expect(model.loadReport.headReinitialized.map((s) => s.split(':')[0])).toEqual(['classifier.1.weight', 'classifier.1.bias']);
    expect(model.loadReport.message).toMatch(/kept the new 5-class head/);
    const sd = await model.stateDict();
    const ref = await readStateDict(sharedPath('weights', 'squeezenet1_1-imagenet.pth'));
    expect(maxAbsDiff(sd['features.0.weight'].data, ref.tensors['features.0.weight'].data)).toBe(0);
    expect(sd['classifier.1.weight'].shape).toEqual([5, 512, 1, 1]);
    model.dispose();
  });

  test('wrappers and DataParallel prefixes are unwrapped; mismatches are named', async () => {
    const path = join(tmp, 'wrapped.pth');
    python(
      `
import sys, torch, torchvision
m = torchvision.models.resnet18(num_classes=4)
torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in m.state_dict().items()}}, sys.argv[1])
sd = m.state_dict(); sd["conv1.weight"] = torch.zeros(64, 3, 5, 5); del sd["bn1.bias"]; sd["extra.w"] = torch.zeros(1)
torch.save(sd, sys.argv[2])
`,
      [path, join(tmp, 'bad.pth')],
    );
    const ok = await ResNet.create({ arch: 'resnet18', numClasses: 4, weights: path });
    expect(ok.loadReport.source).toBe(path);
    ok.dispose();
    const err = await ResNet.create({ arch: 'resnet34', numClasses: 4, weights: join(tmp, 'bad.pth') }).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    const err2 = await ResNet.create({ arch: 'resnet18', numClasses: 4, weights: join(tmp, 'bad.pth') }).catch((e) => e);
    expect(err2.message).toMatch(/missing keys: bn1.bias/);
    expect(err2.message).toMatch(/unexpected keys: extra.w/);
    expect(err2.message).toMatch(/conv1.weight: file \[64, 3, 5, 5\] vs model \[64, 3, 7, 7\]/);
  });
});

describe('hostile and broken files give typed errors and run nothing', () => {
  const expectCheckpointError = async (path: string, pattern: RegExp) => {
    const err = await readStateDict(path).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.code).toBe('ERR_CHECKPOINT');
    expect(err.message).toMatch(pattern);
    expect(err.message).toContain(path);
  };

  test('a pickle calling os.system is refused and nothing runs', async () => {
    const evil = fixture('parity', 'hostile', 'evil.pth');
    const marker = join(fixture('parity', 'hostile'), 'PWNED');
    await expectCheckpointError(evil, /refused to load global '(posix|os)\.system'/);
    await expect(Model.create({ arch: 'squeezenet1_1', weights: evil })).rejects.toBeInstanceOf(CheckpointError);
    expect(existsSync(marker)).toBe(false);
  });

  test('storage offsets out of bounds and short storages', async () => {
    await expectCheckpointError(fixture('parity', 'hostile', 'offset.pth'), /out of bounds/);
    await expectCheckpointError(fixture('parity', 'hostile', 'short_storage.pth'), /fewer than 10 elements/);
  });

  test('truncated zip and wrong magic', async () => {
    const src = sharedPath('weights', 'squeezenet1_1-imagenet.pth');
    const full = readFileSync(src);
    const trunc = join(tmp, 'trunc.pth');
    writeFileSync(trunc, full.subarray(0, Math.floor(full.length / 2)));
    await expectCheckpointError(trunc, /corrupt zip checkpoint/);
    const magic = join(tmp, 'magic.pth');
    writeFileSync(magic, Buffer.concat([Buffer.from('NOTAZIP!'), full.subarray(8)]));
    await expectCheckpointError(magic, /wrong magic/);
    const flipped = join(tmp, 'flipped.pth');
    const f = Buffer.from(full);
    for (let i = 200; i < f.length; i += 4099) f[i] ^= 0xff;
    writeFileSync(flipped, f);
    const err = await readStateDict(flipped).catch((e) => e);
    // either a detected corruption or (when only tensor bytes changed) a successful read; never a crash
    if (err instanceof Error) expect(err).toBeInstanceOf(CheckpointError);
  });

  test('zip entries that claim more than the file holds are refused before anything is allocated', async () => {
    // a valid checkpoint whose central directory then lies about one entry's sizes (local header too)
    const lie = (name: string, how: string) => {
      const path = join(tmp, `${name}.pth`);
      python(
        [
          'import io, struct, sys, zipfile, torch',
          'b = io.BytesIO(); torch.save({"w": torch.ones(64)}, b); src = b.getvalue()',
          'out = io.BytesIO()',
          'with zipfile.ZipFile(io.BytesIO(src)) as z, zipfile.ZipFile(out, "w") as o:',
          '    for n in z.namelist():',
          '        o.writestr(zipfile.ZipInfo(n), z.read(n), zipfile.ZIP_DEFLATED if sys.argv[2] == "ratio" and n.endswith("data.pkl") else zipfile.ZIP_STORED)',
          'd = bytearray(out.getvalue())',
          'p = d.find(b"PK\x01\x02")',
          'while p >= 0:',
          '    name = bytes(d[p + 46:p + 46 + struct.unpack("<H", d[p + 28:p + 30])[0]])',
          '    loc = struct.unpack("<I", d[p + 42:p + 46])[0]',
          '    if sys.argv[2] == "outside" and name.endswith(b"data/0"): d[p + 20:p + 28] = struct.pack("<II", 0x7FFFFFF0, 0x7FFFFFF0)',
          '    if sys.argv[2] == "declares" and name.endswith(b"data/0"):',
          '        d[p + 24:p + 28] = struct.pack("<I", 0x7FFFFFF0); d[loc + 22:loc + 26] = struct.pack("<I", 0x7FFFFFF0)',
          '    if sys.argv[2] == "ratio" and name.endswith(b"data.pkl"):',
          '        d[p + 24:p + 28] = struct.pack("<I", 0xFFFFFFF0); d[loc + 22:loc + 26] = struct.pack("<I", 0xFFFFFFF0)',
          '    p = d.find(b"PK\x01\x02", p + 4)',
          'open(sys.argv[1], "wb").write(d)',
        ].join('\n'),
        [path, how],
      );
      return path;
    };
    for (const [how, pattern] of [
      ['outside', /entry '.*data\/0' lies outside the file/],
      ['declares', /entry '.*data\/0' declares 2147483632 bytes but stores 256/],
      ['ratio', /entry '.*data.pkl' claims a compression ratio above deflate's maximum/],
    ] as const) {
      const path = lie(how, how);
      const rss = process.memoryUsage().rss;
      await expectCheckpointError(path, pattern);
      expect(process.memoryUsage().rss - rss).toBeLessThan(256 * 2 ** 20);
    }
  });

  test('inputs the fuzzers found (test/fixtures/fuzz) are typed refusals', async () => {
    const dir = join(ROOT, 'test', 'fixtures', 'fuzz', 'pth');
    const files = readdirSync(dir);
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const f of files) {
      const path = join(tmp, `${f}.pth`);
      copyFileSync(join(dir, f), path);
      const err = await readStateDict(path).catch((e) => e);
      expect({ f, type: err?.constructor?.name }).toEqual({ f, type: 'CheckpointError' });
    }
  });

  test('safetensors: huge header length, offsets outside the file, wrong dtype', async () => {
    const good = readFileSync(sharedPath('weights', 'squeezenet1_1-imagenet.safetensors'));
    const huge = Buffer.from(good);
    huge.writeBigUInt64LE(1n << 60n, 0);
    const p1 = join(tmp, 'huge.safetensors');
    writeFileSync(p1, huge);
    await expectCheckpointError(p1, /header length/);

    const mk = (header: object, data = Buffer.alloc(16)) => {
      let h = JSON.stringify(header);
      while (h.length % 8) h += ' ';
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(h.length));
      return Buffer.concat([len, Buffer.from(h), data]);
    };
    const p2 = join(tmp, 'offsets.safetensors');
    writeFileSync(p2, mk({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 1 << 20] } }));
    await expectCheckpointError(p2, /outside the 16-byte data section/);
    const p3 = join(tmp, 'dtype.safetensors');
    writeFileSync(p3, mk({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }));
    await expectCheckpointError(p3, /unsupported dtype "F128"/);
    const p4 = join(tmp, 'shape.safetensors');
    writeFileSync(p4, mk({ w: { dtype: 'F32', shape: [5], data_offsets: [0, 16] } }));
    await expectCheckpointError(p4, /does not match its shape/);
    const p5 = join(tmp, 'json.safetensors');
    writeFileSync(p5, mk({}).fill(0x7b, 8, 16));
    await expectCheckpointError(p5, /not valid JSON|no tensors/);
  });

  test('pickles that hung or crashed the reader: a dict holding itself, 200 000 nested tuples, a list holding itself', async () => {
    const zip = (name: string, pkl: string) => {
      const path = join(tmp, `${name}.pth`);
      writeFileSync(`${path}.pkl`, Buffer.from(pkl, 'hex'));
      python(
        'import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_STORED) as z:\n' +
          '    z.writestr("archive/data.pkl", open(sys.argv[2], "rb").read())\n    z.writestr("archive/version", "3\\n")',
        [path, `${path}.pkl`],
      );
      return path;
    };
    const hex = (b: number[]) => Buffer.from(b).toString('hex');
    const key = [...Buffer.from('X\x0a\x00\x00\x00state_dict', 'latin1')];
    // PROTO 2, EMPTY_DICT, BINPUT 0, 'state_dict', BINGET 0, SETITEM, STOP: {'state_dict': <itself>}
    const selfDict = zip('self-dict', hex([0x80, 2, 0x7d, 0x71, 0, ...key, 0x68, 0, 0x73, 0x2e]));
    // EMPTY_TUPLE then TUPLE1 200 000 times: ((((...),),),)
    const deep = zip('deep-tuples', hex([0x80, 2, 0x29]) + '85'.repeat(200000) + '2e');
    // EMPTY_LIST, BINPUT 0, BINGET 0, APPEND: [<itself>]
    const selfList = zip('self-list', hex([0x80, 2, 0x5d, 0x71, 0, 0x68, 0, 0x61, 0x2e]));
    for (const [path, pattern] of [
      [selfDict, /state_dict wrapper contains itself/],
      [deep, /nests containers deeper than 100 levels/],
      [selfList, /does not hold a dict of tensors/],
    ] as const) {
      const t0 = Date.now();
      await expectCheckpointError(path, pattern);
      expect(Date.now() - t0).toBeLessThan(5000);
    }
  });

  test('tensors that share one storage (tied weights, views) read once and equal PyTorch\'s values', async () => {
    const path = join(tmp, 'shared-storage.pth');
    python('import sys, torch\nt = torch.arange(12, dtype=torch.float32)\ntorch.save({"a": t, "b": t[2:6], "c": t.view(3, 4).t()}, sys.argv[1])', [path]);
    const sd = (await readStateDict(path)).tensors;
    expect(Array.from(sd.a.data)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(Array.from(sd.b.data)).toEqual([2, 3, 4, 5]);
    expect(sd.c.shape).toEqual([4, 3]);
    expect(Array.from(sd.c.data)).toEqual([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
  });

  test('size x stride overflow, stride 0 and negative strides are refused before any view is made', async () => {
    const script = `
import collections, io, pickle, sys, zipfile, torch
path, size, stride = sys.argv[1], eval(sys.argv[2]), eval(sys.argv[3])
class Placeholder: pass
storage = Placeholder()
class T:
    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, (storage, 0, size, stride, False, collections.OrderedDict()))
class P(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", torch.FloatStorage, "0", "cpu", 10) if obj is storage else None
buf = io.BytesIO()
P(buf, protocol=2).dump(collections.OrderedDict(w=T()))
with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", buf.getvalue())
    z.writestr("archive/data/0", bytes(40))
    z.writestr("archive/version", "3\\n")
`;
    const cases: [string, string, string, RegExp][] = [
      ['numel', '(2**39, 2**39)', '(1, 1)', /tensor too large/],
      ['reach', '(3,)', '(2**62,)', /out of bounds \(overflow\)/],
      ['stride0', '(2**30,)', '(0,)', /overlapping strides are not supported/],
      ['negative', '(4,)', '(-1,)', /malformed tensor stride|negative tensor size or stride/],
    ];
    for (const [name, size, stride, pattern] of cases) {
      const path = join(tmp, `stride-${name}.pth`);
      python(script, [path, size, stride]);
      await expectCheckpointError(path, pattern);
    }
  });

  test('safetensors that crashed or fooled the reader: deeply nested dtype, tensors sharing one byte range', async () => {
    const mk = (header: string, data = Buffer.alloc(16)) => {
      let h = header;
      while (h.length % 8) h += ' ';
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(h.length));
      return Buffer.concat([len, Buffer.from(h), data]);
    };
    const nested = join(tmp, 'nested.safetensors');
    writeFileSync(nested, mk(`{"w":{"dtype":${'['.repeat(100000)}${']'.repeat(100000)},"shape":[4],"data_offsets":[0,16]}}`));
    await expectCheckpointError(nested, /nests JSON deeper than 8 levels/);
    const shared = join(tmp, 'shared-range.safetensors');
    const header: Record<string, object> = {};
    for (let i = 0; i < 2000; i++) header[`w${i}`] = { dtype: 'F32', shape: [4], data_offsets: [0, 16] };
    writeFileSync(shared, mk(JSON.stringify(header)));
    await expectCheckpointError(shared, /must not overlap or leave gaps/);
    const gap = join(tmp, 'gap.safetensors');
    writeFileSync(gap, mk(JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } })));
    await expectCheckpointError(gap, /starts at byte 8 of the data section where 0 was expected/);
  });

  test('a write that fails midway (file-size limit, as a full disk) is a CheckpointError; the previous file stays intact', async () => {
    const model = await Model.create({ arch: 'squeezenet1_1', weights: null, numClasses: 3 });
    const dir = mkdtempSync(join(tmpdir(), 'tl-full-'));
    try {
      for (const ext of ['pth', 'safetensors']) {
        const path = join(dir, `model.${ext}`);
        await model.save(path);
        const before = readFileSync(path);
        // SIGXFSZ ignored + a 256 KiB file-size limit: fwrite fails with EFBIG partway through the ~5 MB save
        const script = `require(${JSON.stringify(join(ROOT, 'dist', 'cjs', 'index.js'))}).Model.create({ arch: 'squeezenet1_1', weights: null, numClasses: 3 })
          .then((m) => m.save(${JSON.stringify(path)})).then(() => console.log('SAVED'), (e) => console.log(e.constructor.name, e.code, e.message))`;
        const r = spawnSync('bash', ['-c', `trap '' XFSZ; ulimit -f 256; exec "${process.execPath}" -e "$0"`, script], { encoding: 'utf8' });
        expect(r.status).toBe(0); // no std::terminate / abort
        expect(r.stdout).toMatch(/CheckpointError ERR_CHECKPOINT .*write failed/);
        expect(readFileSync(path).equals(before)).toBe(true);
        expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
        expect(Object.keys((await readStateDict(path)).tensors).length).toBeGreaterThan(0);
      }
    } finally {
      model.dispose();
    }
  });

  test('Model.load refuses files without our metadata, naming the alternative', async () => {
    const src = join(tmp, 'plain.pth');
    copyFileSync(sharedPath('weights', 'squeezenet1_1-imagenet.pth'), src);
    await expect(Model.load(src)).rejects.toThrow(/not saved by torch-resnet-tl/);
    const m = await Model.create({ arch: 'squeezenet1_1', weights: null, numClasses: 2 });
    for (const bad of ['w.bin', 'w.ckpt', 'w.onnx']) expect(() => m.save(join(tmp, bad))).toThrow(/a \.pth, \.pt or \.safetensors file name/);
    m.dispose();
  });
});
