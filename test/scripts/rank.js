// A rank for the launcher tests: writes its torchrun environment to OUTDIR/rank-<RANK>.json, then behaves as told:
// `ok` exits 0; `fail:R:CODE` makes rank R exit with CODE after 300 ms while the others wait; `wait` waits for a
// signal and records it. Usage: node rank.js OUTDIR MODE
const { renameSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const [dir, mode] = process.argv.slice(2);
const keys = ['RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'GROUP_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'OMP_NUM_THREADS'];
const rank = process.env.RANK;
const threads = require('../..').getNumThreads();
// written under another name, then renamed: the test polls for rank-*.json and must never read a half-written file
writeFileSync(join(dir, `.tmp-rank-${rank}`), JSON.stringify({ ...Object.fromEntries(keys.map((k) => [k, process.env[k]])), threads, argv: process.argv.slice(4) }));
renameSync(join(dir, `.tmp-rank-${rank}`), join(dir, `rank-${rank}.json`));
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    writeFileSync(join(dir, `signal-${rank}.txt`), sig);
    process.exit(sig === 'SIGTERM' ? 143 : 130);
  });
}
if (mode === 'ok') process.exit(0);
const [, failRank, code] = (mode ?? '').split(':');
if (mode.startsWith('fail') && rank === failRank) setTimeout(() => process.exit(Number(code)), 300);
setTimeout(() => process.exit(0), 60_000); // waits for a signal (the test ends long before)
