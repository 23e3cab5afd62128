// npm run generate: rewrites the generated artifacts (schema/expected-schema.json) from sql/.
import { writeExpectedSchema } from '../src/generate.ts';

await writeExpectedSchema();
console.log('wrote schema/expected-schema.json');
