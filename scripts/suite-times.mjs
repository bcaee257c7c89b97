// Prints each jest suite's wall time from jest's --json output files, longest first, and the total:
// node scripts/suite-times.mjs .ci-times/*.json
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

for (const file of process.argv.slice(2)) {
  const r = JSON.parse(readFileSync(file, 'utf8'));
  const rows = r.testResults.map((t) => ({ suite: relative(process.cwd(), t.name), s: (t.endTime - t.startTime) / 1000, ok: t.status === 'passed' }));
  rows.sort((a, b) => b.s - a.s);
  const total = rows.reduce((a, x) => a + x.s, 0);
  console.log(`\n${file}: ${rows.length} suites, ${r.numPassedTests}/${r.numTotalTests} tests passed, ${total.toFixed(0)} s in suites`);
  for (const x of rows) console.log(`  ${x.s.toFixed(1).padStart(7)} s  ${x.ok ? '  ' : '✕ '}${x.suite}`);
}
