// postinstall: builds native/a2_onednn.node (oneDNN convolutions) when Debian's libdnnl-dev
// is present. Never fails the install: without it a2 runs on wasm's own kernels and says so.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const header = '/usr/include/oneapi/dnnl/dnnl.hpp';
const slower =
  'everything works without it, but conv nets train 12-25x slower (q5 net, 2 cores: ~20 images/s instead of ~250 in fp32 and ~460 in bf16)';
const howTo =
  'To build it: npm run setup (on Debian/Ubuntu it installs libdnnl-dev, using sudo when not root), or apt-get install libdnnl-dev g++ make, then npm run build:native.';
if (!existsSync(header)) {
  console.log(`a2: the oneDNN accelerator is not built: it needs oneDNN's headers (${header}, from libdnnl-dev), which are missing.`);
  console.log(`a2: ${slower}. ${howTo}`);
  process.exit(0);
}
// npm passes its bundled node-gyp to lifecycle scripts; run by hand, fall back to npm's own copy.
const nodeGyp =
  process.env.npm_config_node_gyp ??
  path.join(path.dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
const args = [nodeGyp, 'rebuild'];
if (!process.env.npm_config_nodedir && existsSync('/usr/include/node/node_api.h')) args.push('--nodedir=/usr');
const result = spawnSync(process.execPath, args, { cwd: path.join(root, 'native'), encoding: 'utf8' });
if (result.status === 0) console.log('a2: built the oneDNN accelerator (native/build/Release/a2_onednn.node).');
else
  console.log(
    `a2: the oneDNN accelerator did not build (node-gyp in native/ exited ${result.status ?? result.error?.message}); ${slower}. ${howTo}\n${(result.stderr || result.stdout || '').split('\n').slice(-8).join('\n')}`,
  );
