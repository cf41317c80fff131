import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { readPt } from '../../src/data/index.js';
import { a2, DATA_DIR, ROOT, tempDir } from '../helpers.js';

interface OpResult {
  shape: number[];
  tfjs: number[];
  mine: number[];
  maxAbsDiff: number;
}
interface Q4Metrics {
  ops: Record<string, OpResult & { runningMean?: number[]; runningVar?: number[] }>;
}

const torchAvailable = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

async function runQ4(...extra: string[]): Promise<{ dir: string; metrics: Q4Metrics }> {
  const out = tempDir();
  const { code, lines } = await a2('run', 'q4-ops', '--data-dir', DATA_DIR, '--out', out, ...extra);
  assert.equal(code, 0, lines.join('\n'));
  const dir = path.join(out, 'q4-ops');
  return { dir, metrics: JSON.parse(readFileSync(path.join(dir, 'metrics.json'), 'utf8')) as Q4Metrics };
}

test("on the assignment's files, tfjs and the by-hand ops agree, with PyTorch's output shapes", async () => {
  const { dir, metrics } = await runQ4();
  const shapes = Object.fromEntries(Object.entries(metrics.ops).map(([k, v]) => [k, v.shape]));
  assert.deepEqual(shapes, {
    maxpool1d: [1, 1, 31],
    avgpool1d: [1, 1, 31],
    conv1d: [1, 1, 30],
    sigmoid: [1, 1, 32],
    batchnorm1d: [1, 1, 32],
    linear: [1, 1, 16],
  });
  for (const [op, r] of Object.entries(metrics.ops)) assert.ok(r.maxAbsDiff < 1e-6, `${op}: ${r.maxAbsDiff}`);
  // Max-pool by definition: each output is the larger neighbour.
  const x = readPt(path.join(dir, 'pixel_input.pt')).data;
  for (const [i, v] of metrics.ops.maxpool1d.mine.entries()) assert.equal(v, Math.max(x[i], x[i + 1]));
  // BatchNorm in training mode normalises to mean 0, (biased) variance ~1.
  const bn = metrics.ops.batchnorm1d.mine;
  const mean = bn.reduce((a, b) => a + b, 0) / bn.length;
  assert.ok(Math.abs(mean) < 1e-5);
  assert.deepEqual(readPt(path.join(dir, 'my_conv1d_out.pt')).data, Float32Array.from(metrics.ops.conv1d.mine));
});

test('the same seed gives the same Linear layer and outputs; another seed does not', async () => {
  const a = await runQ4('--seed', '5');
  const b = await runQ4('--seed', '5');
  const c = await runQ4('--seed', '6');
  assert.deepEqual(a.metrics.ops.linear.mine, b.metrics.ops.linear.mine);
  assert.notDeepEqual(a.metrics.ops.linear.mine, c.metrics.ops.linear.mine);
});

test('matches real PyTorch to 1e-6 on files PyTorch wrote', {
  skip: torchAvailable ? false : 'no /usr/bin/python3 with torch',
}, async () => {
  const dir = tempDir();
  const made = spawnSync('/usr/bin/python3', [
    '-c',
    `
import torch
torch.manual_seed(3)
torch.save(torch.randn(1, 1, 40) * 3, '${dir}/x.pt')
torch.save(torch.randn(3, 1, 1), '${dir}/f.pt')
torch.save(torch.randn(8, 40), '${dir}/w.pt')
torch.save(torch.randn(8), '${dir}/b.pt')
`,
  ]);
  assert.equal(made.status, 0, made.stderr.toString());
  const { dir: runDir } = await runQ4(
    '--input',
    `${dir}/x.pt`,
    '--filter',
    `${dir}/f.pt`,
    '--linear-weight',
    `${dir}/w.pt`,
    '--linear-bias',
    `${dir}/b.pt`,
  );
  const check = spawnSync('/usr/bin/python3', [path.join(ROOT, 'scripts/check-q4-torch.py'), runDir]);
  console.log(check.stdout.toString());
  assert.equal(check.status, 0, check.stdout.toString() + check.stderr.toString());
});
