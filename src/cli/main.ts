/**
 * mamba-scope: the engine on the command line. Exit codes: 0 ok, 1 bad input (one line naming
 * the file and the problem), 2 usage error. Stack traces only with --verbose.
 */
import { isMambaScopeError } from '../engine/errors';
import { UsageError } from './args';
import type { Command, CommandIO } from './command';
import { COMMANDS } from './commands';

export async function main(argv: readonly string[], io: CommandIO): Promise<number> {
  const verbose = argv.includes('--verbose');
  const args = argv.filter((a) => a !== '--verbose');
  const [name, ...rest] = args;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    const target = COMMANDS.find((c) => c.name === rest[0]);
    io.out(target ? target.usage : overview());
    return name ? 0 : 2;
  }
  const command: Command | undefined = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.err(`mamba-scope: unknown command "${name}"\n\n${overview()}`);
    return 2;
  }
  if (rest.includes('--help')) {
    io.out(command.usage);
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`mamba-scope ${name}: ${e.message}\n\n${command.usage}`);
      return 2;
    }
    if (isMambaScopeError(e)) {
      io.err(`mamba-scope ${name}: ${e.message}`);
      if (verbose) io.err(e.stack ?? '');
      return 1;
    }
    io.err(`mamba-scope ${name}: internal error: ${e instanceof Error ? e.message : String(e)}${verbose ? '' : ' (run with --verbose for details)'}`);
    if (verbose && e instanceof Error) io.err(e.stack ?? '');
    return 1;
  }
}

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: mamba-scope <command> [options] [--verbose]',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'mamba-scope help <command> shows its options.',
  ].join('\n');
}

interface OutputStream {
  readonly isTTY?: boolean;
  write(s: string): unknown;
}

/** The process's streams as a CommandIO; progress only when stderr is a terminal. */
export function processIO(stdout: OutputStream, stderr: OutputStream): CommandIO {
  return {
    out: (s) => stdout.write(s + '\n'),
    err: (s) => stderr.write(s + '\n'),
    // \r and "erase line": the status line is redrawn in place.
    ...(stderr.isTTY ? { progress: (s: string) => stderr.write(`\r\x1b[2K${s}`) } : {}),
  };
}

if (require.main === module) {
  // `mamba-scope … | head` closes our stdout early: that is the reader's choice, not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  main(process.argv.slice(2), processIO(process.stdout, process.stderr)).then(
    (code) => (process.exitCode = code),
  );
}
