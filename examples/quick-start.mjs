import { openDatabase, createPluginAuth } from 'figma-plugin-auth-db';

// undefined: the embedded PGlite in ./.data/pglite; a postgres:// URL: any PostgreSQL or Supabase.
const db = await openDatabase(process.env.DATABASE_URL);
const auth = createPluginAuth(db);

// Your app owns the users table; find the user or create them (a second run finds them).
const [user] = await db.query(
  `INSERT INTO public.users (email, name) VALUES ($1::varchar, $2::varchar)
   ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name
   RETURNING id`,
  ['ada@example.com', 'Ada'],
);

// One resize: allowed or not, counted exactly once, logged either way.
const answer = await auth.usage.consume(user.id, 'resize');
console.log(answer);
await db.close();
