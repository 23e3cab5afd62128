// npm run generate: rewrites the generated artifacts (sql/functions/generated/hot-paths.sql,
// schema/current.sql, schema/expected-schema.json,
// docs/schema-diagram.md) from sql/.
import { writeGenerated } from './generated.ts';

for (const file of await writeGenerated()) console.log(`wrote ${file}`);
