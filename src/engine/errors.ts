/**
 * Errors the engine raises on purpose. Every rejection of user input is an InputError that names
 * the file (or other source) and the problem in one line, so the CLI, the extension and the fuzz
 * suite can tell "bad input" from "our bug" without parsing messages.
 */
export type ErrorKind = 'bad-input' | 'limit' | 'unsupported' | 'cancelled' | 'model-released';

export class MambaScopeError extends Error {
  constructor(
    readonly kind: ErrorKind,
    /** The file, tensor or other source the problem is in. */
    readonly source: string,
    /** What is wrong, without the source. */
    readonly problem: string,
  ) {
    super(`${source}: ${problem}`);
    this.name = 'MambaScopeError';
  }
}

export class InputError extends MambaScopeError {
  constructor(source: string, problem: string) {
    super('bad-input', source, problem);
  }
}

/** A request that would exceed a resource limit; the message says which limit and how to raise it. */
export class LimitError extends MambaScopeError {
  constructor(source: string, problem: string) {
    super('limit', source, problem);
  }
}

export class CancelledError extends MambaScopeError {
  constructor(what: string) {
    super('cancelled', what, 'cancelled');
  }
}

/**
 * The panel let go of the model's weights (a switch between the native WebGPU engine and tfjs,
 * which keep them in different places, or a lost GPU device): the host sends them again and retries.
 */
export class ModelReleasedError extends MambaScopeError {
  constructor(model: string, why: string) {
    super('model-released', model, why);
  }
}

export function isMambaScopeError(e: unknown): e is MambaScopeError {
  return e instanceof MambaScopeError;
}
