import { WorkResult, WriterLease } from '../src';

// The README's first example, in real time, as written: what it says it prints.
it('README: leader$ prints false, then true once the write settled', async () => {
  const printed: string[] = [];
  const log = (...parts: unknown[]) => printed.push(parts.join(' '));

  const lease = new WriterLease({ leaseDuration: 10_000, retryInterval: 1_000 });
  const processing = lease.run();
  lease.leader$.subscribe((leader) => log('leader:', leader));
  lease.try('route/a', () => WorkResult.Extend);
  await lease.wait();
  processing.unsubscribe();

  expect(printed).toEqual(['leader: false', 'leader: true']);
  lease.dispose();
});
