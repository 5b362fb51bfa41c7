/** Config fields every remote file-system connector (sftp, ftp) shares. */
import { Type } from '@sinclair/typebox';

/** `path` and `max_connections`; `connectionNoun` names what the pool holds (e.g. `SSH sessions`). */
export function remoteFsFields(connectionNoun: string) {
  return {
    path: Type.String({
      default: '.',
      description: 'Remote folder: absolute, or relative to the login folder.',
    }),
    max_connections: Type.Integer({
      minimum: 1,
      maximum: 64,
      default: 4,
      description: `Most ${connectionNoun} opened at once; concurrent items borrow them from a pool.`,
    }),
  };
}

/** Sink fields every remote file-system connector shares. */
export const remoteSinkFields = {
  preserve_mtime: Type.Boolean({
    default: true,
    description:
      "Give each uploaded file the item's modification time (whole seconds) before it is renamed into place, read it back and report it for verification; `false` leaves the server's own time.",
  }),
};
