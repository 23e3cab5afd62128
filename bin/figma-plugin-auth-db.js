#!/usr/bin/env node
// The package bin. In the repository (src/ present, tsx installed) it runs the TypeScript source,
// so it is never stale; in an installed package it runs the build in dist/ (`npm run build`).
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/cli.ts', import.meta.url);
const built = new URL('../dist/cli/cli.js', import.meta.url);

async function load() {
  if (existsSync(source)) {
    try {
      const { register } = await import('tsx/esm/api');
      register();
      return await import(source.href);
    } catch (error) {
      if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !existsSync(built)) throw error;
    }
  }
  if (!existsSync(built)) {
    process.stderr.write('figma-plugin-auth-db: dist/ is missing: run `npm run build` (or `npm install` tsx to run from source)\n');
    process.exit(1);
  }
  return import(built.href);
}

const cli = await load();
process.exitCode = await cli.main(process.argv.slice(2));
