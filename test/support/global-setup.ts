import { migrate } from '../../shared/db.ts';
import { ensureTemplate } from './database.ts';
import { stackEnv } from './env.ts';

/** Once per run: check the stack is there and migrate the template every test database clones. */
export default async function setup() {
  const env = stackEnv();
  await ensureTemplate(env.DATABASE_URL as string, (url) => migrate(url));
}
