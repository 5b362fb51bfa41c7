/**
 * The callback forms of the hot-path fs calls, promisified. fs/promises goes through a
 * FileHandle per call, which costs measurably more per file at thousands of files a second.
 */
import {
  close as closeCb,
  copyFile as copyFileCb,
  fstat as fstatCb,
  link as linkCb,
  lstat as lstatCb,
  open as openCb,
  readFile as readFileCb,
  readlink as readlinkCb,
  rename as renameCb,
  stat as statCb,
  utimes as utimesCb,
  writeFile as writeFileCb,
} from 'node:fs';
import { promisify } from 'node:util';

export const readFile = promisify(readFileCb);
export const writeFile = promisify(writeFileCb);
export const rename = promisify(renameCb);
export const link = promisify(linkCb);
export const stat = promisify(statCb);
export const lstat = promisify(lstatCb);
export const readlink = promisify(readlinkCb);
export const copyFile = promisify(copyFileCb);
export const utimes = promisify(utimesCb);
export const open = promisify(openCb);
export const fstat = promisify(fstatCb);
export const close = promisify(closeCb);
/** Closes without waiting: nothing depends on its outcome (a read-only descriptor). */
export const closeSoon = (fd: number): void => closeCb(fd, () => undefined);
