export * from './capabilities.js';
export * from './http.js';
export * from './job.js';
export * from './job-id.js';
export * from './job-spec.js';
export * from './user-api.js';
export * from './version.js';
