#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), so `npx a2` works right after `npm ci`.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
const { registry } = await import('../experiments/index.ts');
process.exitCode = await main(process.argv, registry);
