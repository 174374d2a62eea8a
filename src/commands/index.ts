// The CLI's commands. Adding one is one line here: a yargs CommandModule default-exported
// from src/commands/<name>.ts.
import type { CommandModule } from 'yargs';
import batch from './batch.js';
import serve from './serve.js';
import quarantine from './quarantine.js';
import queue from './queue.js';
import checkCsv from './checkCsv.js';
import retrieve from './retrieve.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [batch, serve, quarantine, queue, checkCsv, retrieve];
