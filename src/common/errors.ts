// Bad input, told in one line: the CLI prints the message and exits 2 (README "Exit codes").

/** Errors about bad input: the CLI prints the message as one line and exits 2. */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}
