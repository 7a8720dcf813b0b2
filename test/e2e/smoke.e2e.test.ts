import { afterAll, beforeAll, expect, test } from 'vitest';
import { environment, Session } from './harness';

let s: Session;
beforeAll(async () => {
  s = new Session(environment());
  await s.start();
});
afterAll(async () => {
  await s?.stop();
  s?.cleanup();
});

test('palette lists the commands', async () => {
  const items = await s.paletteItems('RiemannLoRA: Check');
  await s.shot('00-palette');
  expect(items.join('\n')).toContain('RiemannLoRA: Check Environment');
});
