import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkOutputs } from '../../src/report/check.js';
import { checkPage, chromiumAvailable } from '../../scripts/browser-check.js';
import { registry } from '../../experiments/index.js';
import { loadExperiments } from '../../src/cli/registry.js';
import { a2, DATA_DIR, tempDir } from '../helpers.js';

const experiments = (...names: string[]) => loadExperiments(registry.filter((e) => names.includes(e.name)));

const out = tempDir();
const ran = await a2('run', 'q1-adam', 'q4-ops', 'q6-rf', '--profile', 'smoke', '--data-dir', DATA_DIR, '--out', out);

test('running several experiments writes the report, showing the missing ones as missing', () => {
  assert.equal(ran.code, 0, ran.lines.join('\n'));
  const md = readFileSync(path.join(out, 'REPORT.md'), 'utf8');
  for (const q of ['Q1', 'Q2.1', 'Q2.2', 'Q3', 'Q4', 'Q5.1', 'Q5.2', 'Q5', 'Q6'])
    assert.match(md, new RegExp(`## ${q.replace('.', '\\.')} `));
  assert.match(md, /\*\*Missing\*\*: `outputs\/q5-cifar` has no results/);
  assert.match(md, /\*\*h = 0\.\d\d\*\*/);
  assert.match(md, /\| conv1d \| \(1, 1, 30\) \|/);
  assert.ok(
    ran.lines.some((l) => /^q6-rf\s+ok\s/.test(l)),
    'summary table row',
  );
});

test('the artefact check accepts what the runs wrote and catches a PNG that is not one, cut short or garbled', async () => {
  assert.deepEqual(await checkOutputs(out, await experiments('q1-adam', 'q4-ops', 'q6-rf')), []);
  const broken = tempDir();
  await a2('run', 'q6-rf', '--out', broken);
  const table = path.join(broken, 'q6-rf/table.png');
  const whole = readFileSync(table);
  // An image reader loads a PNG cut short (it draws what arrives): the check inflates every row.
  const idat = whole.indexOf('IDAT');
  const garbled = Buffer.from(whole);
  garbled.fill(0x55, idat + 40, idat + 80);
  // One bit of the compressed rows: half of such flips still inflate without the chunk CRC and zlib's Adler-32.
  const { crc32 } = await import('node:zlib');
  const flipped = Buffer.from(whole);
  flipped[idat + 60] ^= 0x08;
  const flippedWithCrc = Buffer.from(flipped);
  const idatLength = whole.readUInt32BE(idat - 4);
  flippedWithCrc.writeUInt32BE(crc32(flippedWithCrc.subarray(idat, idat + 4 + idatLength)), idat + 4 + idatLength);
  for (const [damage, bytes, why] of [
    ['not a png', Buffer.from('not a png'), /no PNG signature/],
    ['cut to half', whole.subarray(0, whole.length >> 1), /cut short inside its IDAT chunk/],
    ['cut to 100 bytes', whole.subarray(0, 100), /cut short/],
    ['its image data garbled', garbled, /its IDAT chunk at byte \d+ fails its CRC/],
    ['one bit flipped in its image data', flipped, /its IDAT chunk at byte \d+ fails its CRC/],
    ['one bit flipped, its CRC made to match', flippedWithCrc, /its image data does not inflate|its image data holds/],
  ] as const) {
    writeFileSync(table, bytes);
    const problems = await checkOutputs(broken, await experiments('q6-rf'));
    assert.equal(problems.length, 1, `${damage}: ${problems.join('; ')}`);
    assert.match(problems[0], /table\.png: not a PNG that decodes/, damage);
    assert.match(problems[0], why, damage);
  }
  writeFileSync(table, whole);
  assert.deepEqual(await checkOutputs(broken, await experiments('q6-rf')), [], 'the whole file passes');
});

test('index.html opens in Chromium with every image loaded and nothing wider than the page', {
  skip: chromiumAvailable() ? false : 'no /usr/bin/chromium',
}, async () => {
  const shot = path.join(out, 'report-screenshot.png');
  const page = await checkPage(path.join(out, 'index.html'), shot);
  console.log(`  ${page.images} images, sections: ${page.headings.length}, width ${page.pageWidth}/${page.viewportWidth}`);
  assert.ok(page.images >= 8);
  assert.deepEqual(page.broken, []);
  assert.deepEqual(page.overflowing, [], page.overflowing.join(', '));
  assert.equal(page.headings.length, 9);
  assert.ok(existsSync(shot));
});

test('report --check --allow-missing lets named missing results through, still listed, and nothing else', async () => {
  const out = tempDir();
  const names = registry.map((e) => e.name);
  const all = await a2('report', '--check', '--out', out, '--allow-missing', names.join(','));
  assert.equal(all.code, 0, all.lines.join('\n'));
  assert.equal(all.lines.filter((l) => l.endsWith('[allowed by --allow-missing]')).length, names.length);
  const allButOne = await a2('report', '--check', '--out', out, '--allow-missing', names.slice(1).join(','));
  assert.equal(allButOne.code, 1);
  assert.ok(
    allButOne.lines.includes(
      `${names[0]}: missing (no ${path.join(out, names[0], 'metrics.json')}; run npx a2 run ${names[0]} --out ${out})`,
    ),
  );
  assert.equal((await a2('report', '--check', '--out', out, '--allow-missing', 'q9-nothing')).code, 2);
});

test('a report of a folder that does not exist, or of a file, is a usage error that creates nothing', async () => {
  const { writeFileSync: write } = await import('node:fs');
  const parent = tempDir();
  const typo = path.join(parent, 'outptus');
  const file = path.join(parent, 'notes.txt');
  write(file, 'x');
  for (const [out, why] of [
    [typo, `--out ${typo}: no such folder (expected an outputs folder with results)`],
    [file, `--out ${file}: a file, expected an outputs folder`],
  ]) {
    for (const args of [['report'], ['report', '--check']]) {
      const { code, errors } = await a2(...args, '--out', out);
      assert.equal(code, 2, `${args.join(' ')} --out ${out}`);
      assert.ok(errors.join('\n').includes(why), errors.join('\n'));
    }
  }
  assert.equal(existsSync(typo), false);
});

test('an accuracy outside [0, 1] anywhere in metrics.json is a problem the schema alone let through', async () => {
  const { checkExperimentDir } = await import('../../src/report/check.js');
  const { mkdirSync } = await import('node:fs');
  const dir = path.join(tempDir(), 'x');
  mkdirSync(dir);
  const run = { experiment: 'x', profile: 'full', seed: 0, config: {}, backend: { name: 'cpu' }, packages: {}, dataFiles: [] };
  writeFileSync(path.join(dir, 'run.json'), JSON.stringify({ ...run, startedAt: '2026-01-01T00:00:00Z', durationSeconds: 1 }));
  const experiment = { name: 'x', artefacts: [], metricsSchema: {} };
  const metrics = (finalTestAcc: number, testAccNoTta: number) => ({
    finalTestAcc,
    epochs: [{ testAcc: 0.5, trainAcc: 1 }],
    variants: [{ testAccNoTta, accumulation: 7 }],
  });
  writeFileSync(path.join(dir, 'metrics.json'), JSON.stringify(metrics(0.92, 0)));
  assert.deepEqual(await checkExperimentDir(dir, experiment), []);
  writeFileSync(path.join(dir, 'metrics.json'), JSON.stringify(metrics(7.5, -0.1)));
  assert.deepEqual(await checkExperimentDir(dir, experiment), [
    `${path.join(dir, 'metrics.json')}: finalTestAcc is 7.5, expected an accuracy between 0 and 1`,
    `${path.join(dir, 'metrics.json')}: variants[0].testAccNoTta is -0.1, expected an accuracy between 0 and 1`,
  ]);
});
