// npm run generate: rewrites the generated artifacts from sql/ and src/core/errors.ts:
// sql/functions/generated/hot-paths.sql, schema/current.sql, schema/expected-schema.json,
// docs/schema-diagram.md, docs/reference/schema.md, docs/reference/errors.md.
import { writeGenerated } from './generated.ts';

for (const file of await writeGenerated()) console.log(`wrote ${file}`);
