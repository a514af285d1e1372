import { StoreClientMissingError, StoreUnreachableError, StoreUrlError } from '../stores/errors.js';
import {
  DEMO_HELP,
  DEMO_USAGE,
  REPLICA_HELP,
  REPLICA_USAGE,
  UsageError,
  parseDemoArgs,
  parseReplicaArgs,
} from './args.js';
import { runDemo } from './demo.js';
import { errorLine } from './errorLine.js';
import { LiveView, type ViewStream } from './liveView.js';
import { runReplicaCommand } from './replicaCommand.js';
import { packageVersion } from './packageVersion.js';
import { summaryTable } from './table.js';

/** The streams the CLI writes to. */
export interface CliIO {
  readonly stdout: ViewStream & NodeJS.WritableStream;
  readonly stderr: ViewStream & NodeJS.WritableStream;
}

/** Exit code: done. */
export const EXIT_OK = 0;
/** Exit code: the store cannot be reached, or a replica process failed. */
export const EXIT_FAILURE = 1;
/** Exit code: the command line is wrong. */
export const EXIT_USAGE = 2;

const USAGE = `rx-writer-lease: replicas that keep shared records' statuses, one write per change.

Commands:
  demo      run replicas and a driver that changes the records, then print the figures
  replica   run one replica on a shared store (Redis, etcd, PostgreSQL), for several machines

${DEMO_USAGE}
${REPLICA_USAGE}
Usage: rx-writer-lease --version | --help

\`rx-writer-lease demo --help\` and \`rx-writer-lease replica --help\` describe each option,
its unit and its default; docs/replicas.md, what the demo measures.`;

/**
 * Runs one command line of `rx-writer-lease` and returns its exit code.
 *
 * @example
 * ```ts
 * await main(['demo', '--replicas', 'x']); // 2, and on stderr:
 * // rx-writer-lease demo: --replicas: expected an integer >= 1, received "x"
 * await main(['demo', '--json']); // 0, and the figures as the last line of stdout
 * ```
 * @param argv The arguments after the program: a command, then its flags.
 * @param io Where to write.
 * @returns 0, 1 (store unreachable, a replica failed, no convergence) or 2 (bad arguments).
 */
export async function main(argv: readonly string[], io: CliIO = process): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    (command === undefined ? io.stderr : io.stdout).write(`${USAGE}\n`);
    return command === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (command === '--version' || command === '-v' || command === 'version') {
    io.stdout.write(`${packageVersion()}\n`);
    return EXIT_OK;
  }
  if (command !== 'demo' && command !== 'replica') {
    io.stderr.write(`rx-writer-lease: unknown command "${command}"; expected demo or replica\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout.write(`${command === 'demo' ? DEMO_HELP : REPLICA_HELP}\n`);
    return EXIT_OK;
  }
  try {
    return command === 'demo' ? await demo(args, io) : await runReplicaCommand(parseReplicaArgs(args), io);
  } catch (error) {
    const usage = command === 'demo' ? DEMO_USAGE : REPLICA_USAGE;
    if (error instanceof UsageError || error instanceof StoreUrlError) {
      io.stderr.write(`rx-writer-lease ${command}: ${errorLine(error.message)}\n\n${usage}\n`);
      return EXIT_USAGE;
    }
    if (error instanceof StoreUnreachableError || error instanceof StoreClientMissingError) {
      io.stderr.write(`rx-writer-lease ${command}: ${errorLine(error.message)}\n`);
      return EXIT_FAILURE;
    }
    io.stderr.write(
      `rx-writer-lease ${command}: ${errorLine(error instanceof Error ? error.message : String(error))}\n`,
    );
    return EXIT_FAILURE;
  }
}

/**
 * The entry of `bin/rx-writer-lease.js`: runs `argv` and exits with its code.
 * SIGINT during a demo exits at once with 130; the replica processes it
 * started are killed on the way out.
 *
 * @example
 * ```js
 * // bin/rx-writer-lease.js
 * require('../dist/cjs/cli/main.js').runCli(process.argv.slice(2));
 * ```
 * @param argv The arguments after the program.
 */
export function runCli(argv: readonly string[]): void {
  if (argv[0] === 'demo') {
    process.once('SIGINT', () => {
      process.stderr.write('\nrx-writer-lease demo: interrupted\n');
      process.exit(130);
    });
  }
  main(argv).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(
        `rx-writer-lease: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exit(EXIT_FAILURE);
    },
  );
}

async function demo(args: readonly string[], io: CliIO): Promise<number> {
  const options = parseDemoArgs(args);
  // With --json, stdout carries the JSON alone; the live view goes to a terminal on stderr, if any.
  const viewOut = options.json ? (io.stderr.isTTY ? io.stderr : undefined) : io.stdout;
  const summary = await runDemo(options, { view: viewOut && new LiveView(viewOut) });
  if (options.json) {
    io.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    io.stdout.write(`\n${summaryTable(summary, options)}\n`);
  }
  // The figures are printed either way; a run whose statuses never caught up is a failed run.
  if (!summary.converged) {
    io.stderr.write('rx-writer-lease demo: the statuses did not converge to the specs\n');
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}

if (require.main === module) runCli(process.argv.slice(2));
