import { SluiceError } from '../errors.js';

/** All problems of one file, reported together, in the order of the file. */
export class ConfigErrors extends SluiceError {
  readonly errors: SluiceError[];
  constructor(unsorted: SluiceError[]) {
    const errors = [...unsorted].sort(
      (a, b) =>
        (a.context.line ?? 0) - (b.context.line ?? 0) || (a.context.column ?? 0) - (b.context.column ?? 0),
    );
    super(errors[0].code, errors.map((e) => e.toUserString()).join('\n'), { context: errors[0].context });
    this.errors = errors;
  }
  override toUserString(): string {
    return this.errors.map((e) => e.toUserString()).join('\n');
  }
}
