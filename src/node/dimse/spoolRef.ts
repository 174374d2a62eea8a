// Moved to ../spool/spoolRef.ts; this re-export goes once the node imports the spool from there.
export * from '../spool/spoolRef.js';
