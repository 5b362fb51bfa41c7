/**
 * The built-in plugins, listed explicitly. Each import is cheap: plugin modules load their
 * heavy client libraries lazily inside `create`.
 */
import type { Plugin } from '../core/plugin-api.js';
import { decompressPlugin } from './archive/decompress.js';
import { azureBlobSink } from './azure-blob/sink.js';
import { azureBlobSource } from './azure-blob/source.js';
import { checksumPlugin } from './checksum/checksum.js';
import { compressPlugin } from './compress/compress.js';
import { filterPlugin } from './core-steps/filter.js';
import { renamePlugin } from './core-steps/rename.js';
import { segregatePlugin } from './core-steps/segregate.js';
import { setMetaPlugin } from './core-steps/set-meta.js';
import { ftpSink, ftpSource } from './ftp/index.js';
import { httpSink } from './http/sink.js';
import { httpSource } from './http/source.js';
import { localSink, localSource } from './local/index.js';
import { parquetOptimizePlugin } from './parquet/optimize.js';
import { pgpDecryptPlugin } from './pgp/decrypt.js';
import { pgpEncryptPlugin } from './pgp/encrypt.js';
import { s3Sink } from './s3/sink.js';
import { s3Source } from './s3/source.js';
import { sftpSink, sftpSource } from './sftp/index.js';

// core item steps and local connector
// (one line per plugin; keep alphabetical within a family)

export const builtinPlugins: readonly Plugin[] = [
  filterPlugin,
  renamePlugin,
  segregatePlugin,
  setMetaPlugin,
  decompressPlugin,
  compressPlugin,
  localSource,
  localSink,
  s3Source,
  s3Sink,
  azureBlobSource,
  azureBlobSink,
  httpSource,
  httpSink,
  sftpSource,
  sftpSink,
  ftpSource,
  ftpSink,
  pgpDecryptPlugin,
  pgpEncryptPlugin,
  checksumPlugin,
  parquetOptimizePlugin,
];
