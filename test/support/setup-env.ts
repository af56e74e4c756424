import { stackEnv } from './env.ts';

// Every test process sees the local stack's environment (AWS credentials for the emulator,
// endpoints), as a worker started with `node --env-file=.stack/env` would.
for (const [key, value] of Object.entries(stackEnv())) {
  process.env[key] ??= value;
}
