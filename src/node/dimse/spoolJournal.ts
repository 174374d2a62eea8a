// Moved to ../spool/spoolJournal.ts; this re-export goes once the node imports the spool from there.
export * from '../spool/spoolJournal.js';
