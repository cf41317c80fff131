import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { encodePt, readPt } from '../../src/data/index.js';
import { a2, DATA_DIR, ROOT, tempDir } from '../helpers.js';
import { NO_TORCH, PYTHON, runTorch } from '../torch-python.js';

interface OpResult {
  shape: number[];
  tfjs: number[];
  mine: number[];
  maxAbsDiff: number;
}
interface Q4Metrics {
  inputShape: number[];
  notes: string[];
  ops: Record<string, OpResult & { runningMean?: number[]; runningVar?: number[]; weightShape?: number[] }>;
}

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

/** Runs scripts/check-q4-torch.py on a run folder: real PyTorch recomputes every op from the saved inputs. */
function checkWithTorch(runDir: string): string {
  const check = spawnSync(PYTHON, [path.join(ROOT, 'scripts/check-q4-torch.py'), runDir, '1e-5']);
  const printed = check.stdout.toString() + check.stderr.toString();
  assert.equal(check.status, 0, printed);
  return printed;
}

test('matches real PyTorch to 1e-5 on (N, C, L) files PyTorch wrote: a (4,1,32) batch, and C = 5 with float64/float16 files', {
  skip: NO_TORCH,
}, async () => {
  const dir = tempDir();
  runTorch(
    `
torch.manual_seed(3)
torch.save(torch.randn(4, 1, 32) * 3, f'{out}/x4.pt')
torch.save(torch.randn(3, 5, 40, dtype=torch.float64), f'{out}/x35.pt')
torch.save(torch.randn(2, 5, 4).half(), f'{out}/f254.pt')
layer = torch.nn.Linear(40, 7)
torch.save(layer.weight, f'{out}/w.pt')  # an nn.Parameter, the natural --linear-weight
torch.save(layer.bias, f'{out}/b.pt')
`,
    dir,
  );
  // The case: a batch of four through the assignment's own (3,1,1) filter.
  const batch = await runQ4('--input', `${dir}/x4.pt`);
  assert.deepEqual(batch.metrics.inputShape, [4, 1, 32]);
  assert.deepEqual(batch.metrics.ops.conv1d.shape, [4, 1, 30]);
  console.log(checkWithTorch(batch.dir));
  // Several channels, a (C_out, C_in, k) filter, and files in float64 and float16.
  const wide = await runQ4(
    '--input',
    `${dir}/x35.pt`,
    '--filter',
    `${dir}/f254.pt`,
    '--linear-weight',
    `${dir}/w.pt`,
    '--linear-bias',
    `${dir}/b.pt`,
  );
  assert.deepEqual(wide.metrics.ops.conv1d.shape, [3, 2, 37]);
  assert.deepEqual(wide.metrics.ops.linear.shape, [3, 5, 7]);
  assert.deepEqual(wide.metrics.ops.batchnorm1d.runningMean?.length, 5);
  assert.ok(wide.metrics.notes.some((n) => n.startsWith(`${dir}/x35.pt holds float64 values: converted to float32`)));
  assert.ok(wide.metrics.notes.some((n) => n.startsWith(`${dir}/f254.pt holds float16 values: converted to float32`)));
  console.log(checkWithTorch(wide.dir));
});

test('BatchNorm1d normalises each channel over N and L, and conv1d sums over C_in (no PyTorch needed)', async () => {
  const dir = tempDir();
  const [N, C, L] = [3, 2, 8];
  // Channel 1 is channel 0 scaled by 10 and shifted by 5: per-channel statistics give the same output for both.
  const x = Float32Array.from({ length: N * C * L }, (_, i) => {
    const [n, c, l] = [Math.floor(i / (C * L)), Math.floor(i / L) % C, i % L];
    const base = Math.sin(n * 7 + l * 1.3) + n;
    return c === 0 ? base : base * 10 + 5;
  });
  writeFileSync(path.join(dir, 'x.pt'), encodePt({ shape: [N, C, L], data: x }, 'x'));
  writeFileSync(path.join(dir, 'f.pt'), encodePt({ shape: [1, 2, 1], data: Float32Array.from([1, -0.1]) }, 'f'));
  const { metrics } = await runQ4('--input', `${dir}/x.pt`, '--filter', `${dir}/f.pt`);
  const bn = metrics.ops.batchnorm1d;
  for (const values of [bn.mine, bn.tfjs]) {
    for (let n = 0; n < N; n++)
      for (let l = 0; l < L; l++) {
        const at = (c: number) => (n * C + c) * L + l;
        assert.ok(Math.abs(values[at(0)] - values[at(1)]) < 1e-4, `bn (${n}, ·, ${l})`);
      }
    const channel0 = values.filter((_, i) => Math.floor(i / L) % C === 0);
    const mean = channel0.reduce((a, b) => a + b, 0) / channel0.length;
    const variance = channel0.reduce((a, b) => a + (b - mean) ** 2, 0) / channel0.length; // biased, as BatchNorm normalises
    assert.ok(Math.abs(mean) < 1e-5 && Math.abs(variance - 1) < 1e-3, `mean ${mean}, variance ${variance}`);
  }
  const channelMean = (c: number) => x.filter((_, i) => Math.floor(i / L) % C === c).reduce((a, b) => a + b, 0) / (N * L);
  assert.ok(Math.abs(bn.runningMean![1] - 0.1 * channelMean(1)) < 1e-4);
  // Weight (1, 2, 1) = [1, −0.1]: channel 0 minus a tenth of channel 1 = −0.5 everywhere.
  assert.deepEqual(metrics.ops.conv1d.shape, [N, 1, L]);
  for (const v of [...metrics.ops.conv1d.mine, ...metrics.ops.conv1d.tfjs]) assert.ok(Math.abs(v + 0.5) < 1e-5, `conv ${v}`);
});

test('--linear-bias without --linear-weight is a usage error: exit 2, nothing written', async () => {
  const out = tempDir();
  const { code, errors } = await a2('run', 'q4-ops', '--data-dir', DATA_DIR, '--out', out, '--linear-bias', path.join(out, 'b.pt'));
  assert.equal(code, 2);
  assert.match(errors.join('\n'), /--linear-bias needs --linear-weight/);
  assert.deepEqual(
    readdirSync(out).filter((f) => f !== '.partial'),
    [],
  );
});

test('inputs, filters and Linear layers of the wrong shape are refused in one line naming the file', async () => {
  const dir = tempDir();
  const save = (name: string, shape: number[]) => {
    const file = path.join(dir, `${name}.pt`);
    const numel = shape.reduce((a, b) => a * b, 1);
    writeFileSync(file, encodePt({ shape, data: Float32Array.from({ length: numel }, (_, i) => i % 7) }, name));
    return file;
  };
  const x2 = save('x2', [2, 2, 16]);
  const cases: [string[], RegExp][] = [
    [['--input', save('flat', [32])], /flat\.pt: expected an \(N, C, L\) tensor with N, C ≥ 1 and L ≥ 2, found shape \(32\)$/],
    [['--input', save('short', [4, 1, 1])], /short\.pt: expected an \(N, C, L\) tensor .* found shape \(4, 1, 1\)$/],
    [['--input', x2], /filter\.pt: expected a \(C_out, 2, k\) conv1d filter with 1 ≤ k ≤ 16, found shape \(3, 1, 1\)$/],
    [['--input', x2, '--filter', save('f3', [4, 3, 2])], /f3\.pt: expected a \(C_out, 2, k\) conv1d filter .* found shape \(4, 3, 2\)$/],
    [
      ['--input', x2, '--filter', save('wide', [1, 2, 17])],
      /wide\.pt: expected a \(C_out, 2, k\) conv1d filter with 1 ≤ k ≤ 16, found shape \(1, 2, 17\)$/,
    ],
    [['--linear-weight', save('w', [8, 40])], /w\.pt: expected an \(out, 32\) weight with out ≥ 1, found shape \(8, 40\)$/],
    [['--linear-weight', save('w8', [8, 32]), '--linear-bias', save('b', [1, 8])], /b\.pt: expected a \(8\) bias, found shape \(1, 8\)$/],
  ];
  for (const [args, message] of cases) {
    const out = tempDir();
    const { code, lines } = await a2('run', 'q4-ops', '--data-dir', DATA_DIR, '--out', out, ...args);
    assert.equal(code, 1, args.join(' '));
    const failure = lines.find((l) => l.includes('FAILED'));
    assert.match(failure ?? lines.join('\n'), message);
  }
});

test("without the assignment's files in the data folder q4-ops stops naming the file and where it looked: exit 1, nothing written", async () => {
  const data = tempDir();
  for (const [args, missing] of [
    [[], 'pixel_input.pt'],
    [['--input', path.join(DATA_DIR, 'assignment-q4', 'pixel_input.pt')], 'filter.pt'],
  ] as const) {
    const out = tempDir();
    const { code, lines } = await a2('run', 'q4-ops', '--data-dir', data, '--out', out, ...args);
    assert.equal(code, 1, lines.join('\n'));
    const failure = lines.find((l) => l.includes('FAILED')) ?? lines.join('\n');
    assert.ok(
      failure.includes(
        `${path.join(data, 'assignment-q4', missing)}: expected the assignment's ${missing} (there or in ${path.join(data, 'q4')}/`,
      ),
      failure,
    );
    assert.match(failure, new RegExp(`give --${missing === 'filter.pt' ? 'filter' : 'input'} FILE\\), found no such file`));
    assert.deepEqual(
      readdirSync(out).filter((f) => f !== '.partial'),
      [],
    );
  }
});
