export { ftpSink } from './sink.js';
export { ftpSource } from './source.js';
