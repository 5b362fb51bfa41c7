import { describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import { makePluginContext } from '../../test/helpers/context.js';
import { caught, runStep, testItem } from '../../test/helpers/core-steps-items.js';
import { renamePlugin } from './rename.js';

const rename = (to: string, timezone = 'UTC') => renamePlugin.create({ to, timezone }, makePluginContext());
const MTIME = new Date(Date.UTC(2024, 2, 5, 23, 30));

describe('rename', () => {
  it('renders the new relative path, keeping the folder with {dir}', async () => {
    const step = await rename('{dir}/{stem}-{date:%Y%m%d}.{ext}');
    const out = await runStep(step, testItem('in/data/report.csv', { mtime: MTIME, size: 7 }));
    expect(out?.path).toBe('in/data/report-20240305.csv');
    expect(out?.size).toBe(7);
    expect((await runStep(step, testItem('root.csv', { mtime: MTIME })))?.path).toBe('root-20240305.csv');
  });

  it('keeps a destination set earlier and the bytes', async () => {
    const item = testItem('a.csv');
    const routed = { ...item, destination: 'x/a.csv' };
    const out = await runStep(await rename('{stem}.txt'), routed);
    expect(out?.path).toBe('a.txt');
    expect(out?.destination).toBe('x/a.csv');
    expect(out?.open).toBe(item.open);
  });

  it('formats dates in its timezone', async () => {
    const step = await rename('{date:%Y%m%d}_{name}', 'Asia/Tokyo');
    expect((await runStep(step, testItem('a.csv', { mtime: MTIME })))?.path).toBe('20240306_a.csv');
  });

  it.each([
    ['{meta.to}', '../../etc/passwd', 'it contains a ".." segment'],
    ['{meta.to}', '/etc/passwd', 'it is absolute'],
    ['x/{meta.to}', 'a/..\\..\\b', 'it contains a ".." segment'],
    ['{meta.to}', 'C:\\Windows', 'it is absolute'],
    ['{meta.to}/', 'dir', 'it ends with "/" (no file name)'],
  ])('rejects %s with %j as an unsafe path', async (template, value, reason) => {
    const step = await rename(template);
    const err = (await caught(() =>
      runStep(step, testItem('in/a.csv', { meta: { to: value } })),
    )) as SluiceError;
    expect(err).toBeInstanceOf(SluiceError);
    expect(err.code).toBe('SLUICE_E_DESTINATION');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(`which is not a safe relative path: ${reason}`);
  });

  it('rejects an empty result and names item and template', async () => {
    const step = await rename('{dir}');
    const err = (await caught(() => runStep(step, testItem('a.csv')))) as SluiceError;
    expect(err.message).toBe(
      'rename of "a.csv" with "{dir}" gives "", which is not a safe relative path: it is empty',
    );
  });

  it('reports template and timezone errors at their config path', async () => {
    const template = (await caught(() => rename('{stme}.csv'))) as SluiceError;
    expect(template.code).toBe('SLUICE_E_CONFIG');
    expect(template.context.jsonPath).toBe('/to');
    expect(template.message).toContain('did you mean "{stem}"?');
    const zone = (await caught(() => rename('{name}', 'Nowhere'))) as SluiceError;
    expect(zone.context.jsonPath).toBe('/timezone');
  });
});
