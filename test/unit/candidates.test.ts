// The close-call rule of the source-model ranking and the --candidates parser (no native code).
import { closeCall, RankedCandidate, validateCandidates } from '../../lib/candidates';
import { candidatesArg, withDefaultWeights } from '../../lib/cli/common';

const ranked = (p: number[], count: number): RankedCandidate[] =>
  p.map((x, i) => ({ rank: i + 1, name: `c${i}`, arch: 'resnet18', weights: null, assessment: { linearProbeAccuracy: x, count } as never }));

test('close call: within two standard errors of the difference, never for a clear lead or a single candidate', () => {
  // n = 503: se ≈ 0.0155 and 0.0160, 2·√(se² + se²) ≈ 0.0446
  expect(closeCall(ranked([0.859, 0.847], 503)).closeCall).toBe(true);
  expect(closeCall(ranked([0.859, 0.847], 503)).closeCallReason).toMatch(/c0 \(85\.9%\) and c1 \(84\.7%\) are within two standard errors \(4\.5%\) on 503 images/);
  expect(closeCall(ranked([0.903, 0.819], 503)).closeCall).toBe(false);
  expect(closeCall(ranked([0.9], 50)).closeCall).toBe(false);
  // the same gap on 20 000 images is clear
  expect(closeCall(ranked([0.859, 0.847], 20000)).closeCall).toBe(false);
});

test('--candidates: arch[:weights], none = random init, no weights = the command default; names are unique', () => {
  const named = (value: string, weights: string | null) => validateCandidates(withDefaultWeights(candidatesArg(value), weights)).map(({ arch, weights: w, name }) => ({ arch, weights: w, name }));
  expect(named('resnet18:none, squeezenet1_1:/w/s.pth,resnet50', 'DEFAULT')).toEqual([
    { arch: 'resnet18', weights: null, name: 'resnet18 (random init)' },
    { arch: 'squeezenet1_1', weights: '/w/s.pth', name: 'squeezenet1_1:/w/s.pth' },
    { arch: 'resnet50', weights: 'DEFAULT', name: 'resnet50:DEFAULT' },
  ]);
  expect(() => validateCandidates(candidatesArg('resnet18:none,resnet18:none'))).toThrow(/distinct name/);
  expect(() => validateCandidates([{ arch: 'resnet18', head: 'big' }])).toThrow(/candidates\[0\]\.head/);
});
