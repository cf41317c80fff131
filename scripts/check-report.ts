// CI's proof that every figure reproduces: after `a2 run all --profile smoke`, every expected
// artefact exists and is valid, and outputs/index.html renders in Chromium with every image.
//   node --import tsx scripts/check-report.ts [outputs]
import path from 'node:path';
import { registry } from '../experiments/index.js';
import { loadExperiments } from '../src/cli/registry.js';
import { checkOutputs } from '../src/report/check.js';
import { checkPage, chromiumAvailable } from './browser-check.js';

const outRoot = path.resolve(process.argv[2] ?? 'outputs');
const problems = await checkOutputs(outRoot, await loadExperiments(registry));
if (chromiumAvailable()) {
  const page = await checkPage(path.join(outRoot, 'index.html'), path.join(outRoot, 'report-screenshot.png'));
  console.log(
    `index.html: ${page.images} images, ${page.headings.length} sections, page ${page.pageWidth}px wide in a ${page.viewportWidth}px viewport`,
  );
  if (page.images === 0) problems.push('index.html: no images');
  for (const b of page.broken) problems.push(`index.html: image ${b} did not load`);
  for (const o of page.overflowing) problems.push(`index.html: ${o} overflows the page`);
} else {
  problems.push('chromium not found: the report was not checked in a browser');
}
for (const p of problems) console.log(`problem: ${p}`);
console.log(`${problems.length === 0 ? 'every artefact present and valid' : `${problems.length} problem(s)`}`);
process.exitCode = problems.length === 0 ? 0 : 1;
