export { sftpSink } from './sink.js';
export { sftpSource } from './source.js';
