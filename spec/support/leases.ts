import { WriterLease, constantBackoff, type WriterLeaseOptions } from '../../src';

/**
 * Makes leases on the real (monotonic) clock with short durations (a write
 * holds 50 ms, a retry comes 5 ms later, every backoff is 5 ms), and disposes
 * every lease it made after each test, so that no timer outlives a test.
 * Call it at the top of a spec file.
 */
export function leaseFactory(): (options?: Partial<WriterLeaseOptions>) => WriterLease {
  const leases: WriterLease[] = [];
  afterEach(() => {
    for (const lease of leases.splice(0)) lease.dispose();
  });
  return (options = {}) => {
    const lease = new WriterLease({
      leaseDuration: 50,
      retryInterval: 5,
      backoff: constantBackoff(5),
      spread: false,
      ...options,
    });
    leases.push(lease);
    return lease;
  };
}
