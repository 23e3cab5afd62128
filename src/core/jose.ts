// jose, loaded the first time a JWT is signed or checked by it rather than when the library is
// imported: its module graph (about fifty files) is a large part of a server's start-up
// (BENCHMARKS.md, the cold starts), and a server answers its first requests (a health check, a
// token this service issued, checked with node:crypto) without it. Every caller is already async.
export type Jose = typeof import('jose');

let loading: Promise<Jose> | undefined;

export function loadJose(): Promise<Jose> {
  loading ??= import('jose');
  return loading;
}
