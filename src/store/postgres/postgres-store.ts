import type { Store } from '../types.js';

export interface PostgresStoreOptions {
  connectionString: string;
  poolSize?: number;
}

export function createPostgresStore(_opts: PostgresStoreOptions): Store {
  throw new Error('PostgreSQL store not implemented yet');
}
