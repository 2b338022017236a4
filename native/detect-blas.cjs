// Prints the BLAS configuration for binding.gyp: "openblas", "cblas" or "none" (argument: kind),
// or the include directory (argument: include). Used at `npm install` time only.
'use strict';
const fs = require('fs');
const { execSync } = require('child_process');
const what = process.argv[2] || 'kind';
if (process.env.EVOREC_NO_BLAS) { process.stdout.write(what === 'kind' ? 'none' : '.'); process.exit(0); }
const candidates = [
  ['openblas', '/usr/include/x86_64-linux-gnu/openblas-pthread', 'openblas'],
  ['openblas', '/usr/include/aarch64-linux-gnu/openblas-pthread', 'openblas'],
  ['openblas', '/usr/include/openblas', 'openblas'],
  ['openblas', '/opt/homebrew/opt/openblas/include', 'openblas'],
  ['openblas', '/usr/local/opt/openblas/include', 'openblas'],
];
let found = null;
for (const [kind, dir, lib] of candidates) {
  if (fs.existsSync(dir + '/cblas.h') && libExists(lib)) { found = { kind, dir }; break; }
}
if (!found) {
  try {
    const flags = execSync('pkg-config --cflags-only-I openblas', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dir = flags.replace(/^-I/, '').split(/\s+/)[0] || '/usr/include';
    if (fs.existsSync(dir + '/cblas.h')) found = { kind: 'openblas', dir };
  } catch { /* no pkg-config or no openblas.pc */ }
}
if (!found) {
  for (const dir of ['/usr/include/x86_64-linux-gnu', '/usr/include/aarch64-linux-gnu', '/usr/include']) {
    if (fs.existsSync(dir + '/cblas.h') && libExists('openblas')) { found = { kind: 'openblas', dir }; break; }
  }
}
process.stdout.write(what === 'kind' ? (found ? found.kind : 'none') : (found ? found.dir : '.'));

function libExists(lib) {
  const dirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib', '/usr/lib64', '/usr/local/lib',
    '/opt/homebrew/opt/openblas/lib', '/usr/local/opt/openblas/lib'];
  return dirs.some((d) => fs.existsSync(`${d}/lib${lib}.so`) || fs.existsSync(`${d}/lib${lib}.dylib`));
}
