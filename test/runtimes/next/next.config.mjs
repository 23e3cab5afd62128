// The app imports the library's source from the repository: Turbopack's root is the repository.
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../../..');
export default {
  turbopack: { root },
  outputFileTracingRoot: root,
  typescript: { ignoreBuildErrors: true }, // the repository's own `npm run typecheck` checks these files
};
