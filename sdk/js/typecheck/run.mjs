// Runs the type-level drop-in check (`npm run test:types`): the app in app.ts and seed
// 002's code, first against agora-rtm-sdk 2.3.0's own typings, then with the import
// mapped to this package's declarations (dist/index.d.ts, so build first). Every
// project runs even when an earlier one fails, so one run shows every gap.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const tsc = join(here, '..', 'node_modules', 'typescript', 'bin', 'tsc');
const projects = [
  'tsconfig.agora.json',
  'tsconfig.seed002.agora.json',
  'tsconfig.switchboard.json',
  'tsconfig.seed002.switchboard.json',
];
if (!existsSync(join(here, '..', 'dist', 'index.d.ts'))) {
  console.error('typecheck: dist/index.d.ts is missing; run `npm run build` first');
  process.exit(1);
}
let failed = 0;
for (const p of projects) {
  const r = spawnSync(process.execPath, [tsc, '-p', join(here, p)], { stdio: 'inherit' });
  const ok = r.status === 0;
  console.log(`typecheck ${p}: ${ok ? 'ok' : 'FAILED'}`);
  if (!ok) failed += 1;
}
process.exit(failed === 0 ? 0 : 1);
