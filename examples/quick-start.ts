// The README's quick start, as a file the type check compiles and test/readme.test.ts runs.
// In your app, import from 'figma-plugin-auth-db'.
import { openDatabase, createPluginAuth } from '../src/index.ts';

const db = await openDatabase(process.env.DATABASE_URL);      // undefined: embedded PGlite in ./.data/
const auth = createPluginAuth(db, { tokenSecret: process.env.PLUGIN_TOKEN_SECRET });

const [user] = await db.query<{ id: string }>(
  "INSERT INTO users (email) VALUES ('ada@example.com') RETURNING id");
const userId = user!.id;
const answer = await auth.usage.consume(userId, 'resize', { items: 1 });
// { allowed: true, reason: 'ok', planSlug: 'free', used: 1, usageLimit: 2, remaining: 1,
//   batchLimit: 1, resetsAt: null, replayed: false }
await db.close();

console.log(JSON.stringify(answer));
