export { localSink } from './sink.js';
export { localSource } from './source.js';
