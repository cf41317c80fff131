import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { RunError } from '../../src/errors.js';
import { EXPLODED_FACTOR, LossWatch } from '../../src/run/divergence.js';
import { DATA_DIR, a2, tempDir } from '../helpers.js';

test('a falling, noisy loss passes; NaN, Infinity and a 1000-fold explosion stop with where and the last sound loss', () => {
  const steps = [2.3, 2.1, 2.4, 1.9, 1.2, 1.5, 0.9];
  const sound = new LossWatch('net', 0.1, true);
  for (const [i, loss] of steps.entries()) sound.check(loss, 1, i + 1);

  for (const [bad, shown] of [
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
    [2.3 * EXPLODED_FACTOR * 1.01, `over ${EXPLODED_FACTOR}× its first value 2.3000`],
  ] as const) {
    const watch = new LossWatch('net', 1e6, true);
    watch.check(2.3, 1, 1);
    watch.check(2.2, 2, 7);
    assert.throws(
      () => watch.check(bad, 2, 8),
      (err: Error) =>
        err instanceof RunError &&
        err.message.startsWith('net diverged: the training loss is ') &&
        err.message.includes(shown) &&
        err.message.includes('at epoch 2, step 8 (last sound loss 2.2000 at epoch 2, step 7); lower --lr (given 1000000)'),
    );
  }
  const noFlag = new LossWatch('net', 0.2, false);
  assert.throws(
    () => noFlag.check(Number.NaN, 1, 1),
    /at epoch 1, step 1 \(no finite loss before it\); the learning rate 0\.2 is too high for this setting$/,
  );
});

for (const name of ['q5-cifar', 'q2-fc-ae']) {
  test(`${name} --profile smoke --lr 1e6 stops with the divergence message, exit 1, and lands no metrics`, async () => {
    const out = tempDir();
    const { code, lines } = await a2('run', name, '--profile', 'smoke', '--lr', '1e6', '--data-dir', DATA_DIR, '--out', out);
    assert.equal(code, 1, lines.join('\n'));
    const failed = lines.find((l) => l.startsWith(`[${name}] FAILED:`));
    assert.match(
      failed ?? '',
      /diverged: the training loss is .* at epoch 1, step \d+ \(last sound loss [\d.]+ at epoch 1, step \d+\); lower --lr \(given 1000000\)$/,
    );
    assert.equal(existsSync(path.join(out, name, 'metrics.json')), false);
    assert.equal(existsSync(path.join(out, '.partial', name)), false, 'nothing half-written is left');
  });
}
