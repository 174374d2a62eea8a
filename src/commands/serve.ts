// `dicom-deid serve`: run the DICOM node until SIGTERM/SIGINT.
import type { Argv, CommandModule } from 'yargs';
import { closeLogger, createLogger } from '../log.js';
import { basename } from 'node:path';
import { formatProblems } from '../core/mapping/csvProblem.js';
import { MappingError } from '../core/types.js';
import { describeSystemError, UsageError } from '../errors.js';
import { makeNodeFolder } from '../node/nodeFolders.js';
import { nodeConfigFrom, withServeOptions, type NodeArgs } from './nodeOptions.js';
import { settingLabel } from '../node/nodeConfig.js';
import { shellQuote } from '../shellQuote.js';

const command: CommandModule<object, NodeArgs> = {
  command: 'serve',
  describe: 'Run the DICOM node: receive by C-STORE, de-identify, file, forward; status page and API over HTTP',
  builder: (y: Argv) =>
    withServeOptions(y).epilog(
      'Every setting can be given in the --config file (JSON, the keys in quotes above) or as its flag; flags win. ' +
        'Defaults: config/default.json. The status page is at http://127.0.0.1:11180/ unless httpHost/httpPort say otherwise.',
    ),
  handler: async (args) => {
    const config = nodeConfigFrom(args);
    makeNodeFolder(config.logDir, 'logDir', { mustWrite: true }); // before the logger, which would throw a raw EACCES
    const logger = createLogger({
      logDir: config.logDir,
      consoleFormat: config.logFormat,
      maxFileBytes: config.logMaxSizeMB * 1024 * 1024,
      maxFiles: config.logMaxFiles,
    });
    // Loaded here, not at the top: the DIMSE stack (dcmjs-dimse, dcmjs) takes ~0.1 s to load,
    // which every other command would pay for nothing.
    const { DeidNode } = await import('../node/deidNode.js');
    const node = new DeidNode(config, logger);
    // SIGHUP: new certificates (rotation without a restart) and allowedAets host names again.
    const onHangup = () => {
      logger.info('SIGHUP: reloading certificates and allowed AE host names');
      void node.reload();
    };
    // The handlers are there from before the start (a Ctrl-C while the spool reserve is written
    // stops the node as soon as it is up; found by a new-user trial: it was lost) and stay until
    // the process ends: a second signal must not kill the node halfway through its stop (in-flight
    // stores unanswered). Ctrl-C under `npm start` brings two SIGINTs at once: the terminal's to
    // the process group, and the one npm forwards.
    let stopping = false;
    /** Set before the logger closes: a signal after that has nothing left to do. */
    let closing = false;
    let requestStop = (): void => {};
    const stopRequested = new Promise<void>((resolve) => (requestStop = resolve));
    const onSignal = (sig: string) => {
      if (closing) {
        // The log is closing (the stop is all but done): answer on stderr directly, so a second
        // Ctrl-C is never met with silence (CI found the test's second signal landing here).
        process.stderr.write(`${sig}: already stopping (the log is closed; the node ends now)\n`);
        return;
      }
      if (stopping) {
        logger.info(`${sig}: already stopping (finishing in-flight instances; SIGKILL forces it)`);
        return;
      }
      stopping = true;
      logger.info(`${sig}: stopping (finishing in-flight instances)`);
      process.off('SIGHUP', onHangup);
      requestStop();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    try {
      await node.start();
    } catch (e) {
      await node.stop().catch(() => undefined);
      closing = true;
      await closeLogger(logger);
      const err = e as NodeJS.ErrnoException & { port?: number; endpoint?: string };
      const port = err.port ?? config.port;
      const which = err.endpoint === 'dicom-tls' ? 'DICOM TLS port' : 'DICOM port';
      const key = settingLabel(err.endpoint === 'dicom-tls' ? 'tls.port' : 'port');
      if (err.code === 'EADDRINUSE') {
        throw new UsageError(
          `the ${which} ${port} is already in use (${key}): another program listens on it; stop it or choose another port`,
        );
      }
      if ((err.code === 'EACCES' || err.code === 'EPERM') && err.syscall === 'listen') {
        // Linux: binding below net.ipv4.ip_unprivileged_port_start (1024) needs a capability.
        const why =
          port > 0 && port < 1024 ? 'ports below 1024 need root or CAP_NET_BIND_SERVICE' : describeSystemError(err);
        throw new UsageError(`not allowed to listen on port ${port} (${key}): ${why}`);
      }
      if (
        (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') &&
        (err.syscall === 'listen' || err.syscall === 'getaddrinfo')
      ) {
        // In words, but exit 1, not 2: at boot an address (or a name) may come up after the node,
        // and systemd starts it again (RestartPreventExitStatus=2 would leave it down).
        throw new Error(`cannot listen on ${config.host} (${settingLabel('host')}): ${describeSystemError(err)}`);
      }
      if (e instanceof MappingError && e.problems.length > 0) {
        // The node's output goes to journals and log collectors: never the CSV's values (MRNs...).
        const lines = formatProblems(e.problems, 'error', basename(config.csv), true);
        throw new UsageError(
          [...lines, `the values are not shown; dicom-deid check-csv ${shellQuote(config.csv)} shows them`].join('\n'),
        );
      }
      if (err.name === 'MappingError' || err.name === 'ConfigError') throw new UsageError(err.message);
      throw e;
    }
    process.on('SIGHUP', onHangup);
    await stopRequested;
    await node.stop();
    closing = true;
    await closeLogger(logger);
    process.exitCode = 0;
  },
};

export default command;
