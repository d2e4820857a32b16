/** One CLI subcommand. `run` returns the exit code; thrown errors are mapped by main.ts. */
export interface Command {
  readonly name: string;
  readonly summary: string;
  /** Usage lines shown by `mamba-scope help <name>` and on usage errors. */
  readonly usage: string;
  run(argv: readonly string[], io: CommandIO): Promise<number>;
}

/** Where a command writes; tests capture it instead of the process streams. */
export interface CommandIO {
  out(line: string): void;
  err(line: string): void;
  /**
   * A status line that replaces the previous one (progress, ETA); '' clears it. Present only
   * when stderr is a terminal, so pipes, files and --json output get none of it.
   */
  progress?(line: string): void;
}
