// The README's quick start, read the way a newcomer reads it: the install commands, the script,
// the two runs. Shared by test/repo.readme.test.ts (against the source) and test/package.test.ts
// (against the packed tarball).
import assert from 'node:assert/strict';

export interface QuickStart {
  /** The install block's commands, comments dropped. */
  commands: string[];
  /** The script, exactly as shown (saved as quick-start.mjs). */
  script: string;
  /** The run block's commands. */
  runs: string[];
}

export function readmeQuickStart(text: string): QuickStart {
  const start = text.indexOf('## Quick start');
  assert.ok(start >= 0, 'the README has a "## Quick start" section');
  const section = text.slice(start, text.indexOf('\n## ', start + 1));
  const blocks = [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, code: m[2]! }));
  const shell = (code: string) => code.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean);
  const [install, script, run] = blocks;
  assert.equal(install?.lang, 'sh');
  assert.equal(script?.lang, 'js');
  assert.equal(run?.lang, 'sh');
  return { commands: shell(install!.code), script: script!.code, runs: shell(run!.code) };
}

/** The fields of a `console.log(answer)` as printed (util.inspect, one field a line), as text. */
export function printedAnswer(stdout: string): Record<string, string> {
  return Object.fromEntries([...stdout.matchAll(/^\s*(\w+): (.+?),?$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** What the two runs of the quick start print, on a fresh database. */
export const QUICK_START_RUNS = [
  { allowed: 'true', reason: "'ok'", planSlug: "'free'", used: '1', usageLimit: '2', remaining: '1' },
  { allowed: 'true', reason: "'ok'", planSlug: "'free'", used: '2', usageLimit: '2', remaining: '0' },
];

export const pickAnswer = (p: Record<string, string>) =>
  ({ allowed: p.allowed, reason: p.reason, planSlug: p.planSlug, used: p.used, usageLimit: p.usageLimit, remaining: p.remaining });
