/** Config fields every remote file-system connector (sftp, ftp) shares. */
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';

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

/** Source fields: one folder (`path`) or several (`paths`, listed in order, with `match`). */
export const remoteSourceFields = {
  path: Type.Optional(
    Type.String({
      description: 'Remote folder: absolute, or relative to the login folder (default `.`). Or use `paths`.',
    }),
  ),
  paths: Type.Optional(
    Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description:
        'Several folders listed in order, instead of `path`. Every item carries the folder it was listed under (`root`): tidy-up acts there, and the ledger tells the same relative path under two folders apart.',
    }),
  ),
  match: Type.Optional(
    Type.Union([Type.Literal('all'), Type.Literal('first')], {
      description:
        'With `paths`: `all` (default) takes every file of every folder; `first` takes a relative path only from the first folder that has it (an earlier folder hides the same path under later ones).',
    }),
  ),
};

interface RootsConfig {
  path?: string;
  paths?: string[];
  match?: 'all' | 'first';
}

/** `validate` of a remote source: exactly one of `path` and `paths`; `match` only with `paths`. */
export function validateRoots(config: RootsConfig): void {
  if (config.path !== undefined && config.paths !== undefined) {
    throw new SluiceError(
      'SLUICE_E_CONFIG',
      'set either `path` (one folder) or `paths` (several), not both',
      {
        context: { jsonPath: '/paths' },
      },
    );
  }
  const repeated = config.paths?.findIndex((p, i) => config.paths!.indexOf(p) !== i) ?? -1;
  if (repeated >= 0) {
    throw new SluiceError('SLUICE_E_CONFIG', `"${config.paths![repeated]}" is in \`paths\` twice`, {
      context: { jsonPath: `/paths/${repeated}` },
    });
  }
  if (config.match !== undefined && config.paths === undefined) {
    throw new SluiceError('SLUICE_E_CONFIG', '`match` chooses between the folders of `paths`: set `paths`', {
      context: { jsonPath: '/match' },
    });
  }
}

/** The folders a remote source lists, in order, and whether its items carry their root. */
export function rootsOf(config: RootsConfig): {
  roots: string[];
  multiRoot: boolean;
  match: 'all' | 'first';
} {
  validateRoots(config);
  if (config.paths !== undefined)
    return { roots: config.paths, multiRoot: true, match: config.match ?? 'all' };
  return { roots: [config.path ?? '.'], multiRoot: false, match: 'all' };
}
