// libFuzzer with AddressSanitizer + UndefinedBehaviorSanitizer on the checkpoint readers and the image decoder:
// each target runs >= 10 000 executions from the seed corpus and must end with no sanitizer report, crash, leak
// or timeout (scripts/fuzz.sh; `npm run fuzz -- --seconds N` runs longer).
import { spawnSync } from 'node:child_process';
import { ROOT } from '../helpers';

test('fuzz targets: >= 10 000 executions each, zero sanitizer reports', () => {
  const r = spawnSync('bash', ['scripts/fuzz.sh', '--runs', '10000'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('[fuzz]'));
  console.log(lines.join('\n'));
  if (r.status !== 0) console.log(r.stdout.slice(-6000), r.stderr.slice(-2000));
  expect(r.status).toBe(0);
  for (const target of ['pickle', 'pth', 'safetensors', 'decode']) {
    const m = new RegExp(`^\\[fuzz\\] ${target}: (\\d+) executions, coverage (\\d+) edges, 0 sanitizer reports$`, 'm').exec(r.stdout);
    expect({ target, ok: Boolean(m) }).toEqual({ target, ok: true });
    expect(Number(m![1])).toBeGreaterThanOrEqual(10000);
  }
}, 30 * 60 * 1000);
