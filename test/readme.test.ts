// The README's quick start is examples/quick-start.ts, line for line, and it runs.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DIALECTS, withDatabase } from './helpers/databases.ts';
import { runScript } from './helpers/run.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const example = readFileSync(new URL('../examples/quick-start.ts', import.meta.url), 'utf8');

test('the README quick-start snippet is examples/quick-start.ts', () => {
  const start = readme.indexOf('Then, from your backend');
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(start))![1]!;
  const code = (text: string) =>
    text.split('\n').filter((l) => l.trim() && !l.trim().startsWith('//') && !l.startsWith('import ') && !l.startsWith('console.log'));
  assert.deepEqual(code(block), code(example));
});

if (DIALECTS.includes('postgres')) {
  describe('README quick start [postgres]', () => {
    test('runs against a set-up database and consumes one free resize', () =>
      withDatabase('postgres', async ({ url }) => {
        const result = await runScript('examples/quick-start.ts', [], { env: { DATABASE_URL: url! } });
        assert.equal(result.code, 0, result.all);
        const answer = JSON.parse(result.stdout.trim().split('\n').at(-1)!);
        assert.deepEqual(answer, {
          allowed: true, reason: 'ok', planSlug: 'free', used: 1, usageLimit: 2, remaining: 1,
          batchLimit: 1, resetsAt: null, replayed: false,
        });
      }));
  });
}
