import os from 'node:os';

/**
 * An IPv4 address of this machine that is not loopback: webhook senders refuse loopback
 * whatever their settings, so test receivers listen here instead.
 */
export function hostAddress(): string {
  const found = Object.values(os.networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal);
  if (!found) throw new Error('this machine has no non-loopback IPv4 address for test receivers');
  return found.address;
}
