// npm run generate: rewrites the generated artifacts (schema/expected-schema.json,
// docs/schema-diagram.md) from sql/.
import { writeGenerated } from './generated.ts';

for (const file of await writeGenerated()) console.log(`wrote ${file}`);
