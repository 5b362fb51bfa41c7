/** Exit codes of the `sluice` command (documented in the README). */
export const EXIT = {
  /** Everything processed (or nothing to do). */
  ok: 0,
  /**
   * Some items failed for good (they are in the summary, the ledger and on_error), or a pass
   * report (`report:`) could not be written.
   */
  failed: 1,
  /** Invalid pipeline or command line: nothing was run. */
  usage: 2,
  /** The pipeline is running already (same name and state folder, SLUICE_E_LOCKED): nothing was run. */
  locked: 3,
  /** Interrupted (second SIGINT/SIGTERM): in-flight items aborted, nothing half-written. */
  interrupted: 130,
} as const;
