/** An answer of the control API other than 2xx: its status, message and, for a list of problems, details. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details?: string[],
  ) {
    super(message);
  }
}
