import { Registry } from 'prom-client';
import { WorkResult, WriterLease, constantBackoff } from '../src';
import { leaseMetrics } from '../src/prometheus';
import { nextEvent } from './support/waitFor';

const createLease = (name: string) =>
  new WriterLease({ leaseDuration: 1_000, retryInterval: 5, backoff: constantBackoff(5), name });

/** The value of one series in the text exposition, or undefined when absent. */
async function sample(registry: Registry, series: string): Promise<number | undefined> {
  const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('leaseMetrics (prom-client)', () => {
  it('reports leadership, queue depth, results, durations, retries and errors', async () => {
    const registry = new Registry();
    const lease = createLease('status');
    const reporting = leaseMetrics(lease, { registry });
    const processing = lease.run();

    expect(await sample(registry, 'writer_lease_leader{lease="status"}')).toBe(0);
    lease.try('a', async () => WorkResult.Extend);
    await nextEvent(lease, 'settled');
    expect(await sample(registry, 'writer_lease_leader{lease="status"}')).toBe(1);
    expect(await sample(registry, 'writer_lease_results_total{lease="status",result="extend"}')).toBe(1);
    expect(await sample(registry, 'writer_lease_work_duration_seconds_count{lease="status",result="extend"}')).toBe(1);

    let calls = 0;
    lease.try('b', () => {
      if (calls++ === 0) throw new Error('store down');
      return WorkResult.Extend;
    });
    await nextEvent(lease, 'settled', (e) => e.key === 'b' && !e.retry);
    expect(await sample(registry, 'writer_lease_errors_total{lease="status"}')).toBe(1);
    expect(await sample(registry, 'writer_lease_retries_total{lease="status"}')).toBe(1);
    expect(await sample(registry, 'writer_lease_submissions_total{lease="status"}')).toBe(2);

    processing.unsubscribe();
    lease.try('c', () => WorkResult.None);
    lease.try('d', () => WorkResult.None);
    expect(await sample(registry, 'writer_lease_pending_keys{lease="status"}')).toBe(2);

    reporting.unsubscribe();
    expect(await sample(registry, 'writer_lease_leader{lease="status"}')).toBeUndefined();
    expect(await sample(registry, 'writer_lease_results_total{lease="status",result="extend"}')).toBeUndefined();
  });

  it('lets several leases share one registry, told apart by the lease label', async () => {
    const registry = new Registry();
    const first = createLease('one');
    const second = createLease('two');
    const reporting = [
      leaseMetrics(first, { registry, prefix: 'app_' }),
      leaseMetrics(second, { registry, prefix: 'app_' }),
    ];
    second.try('x', () => WorkResult.None);
    expect(await sample(registry, 'app_pending_keys{lease="one"}')).toBe(0);
    expect(await sample(registry, 'app_pending_keys{lease="two"}')).toBe(1);
    reporting.forEach((r) => r.unsubscribe());
  });

  it('rejects a lease that is not one and a prefix that is not a metric name', () => {
    expect(() => leaseMetrics({} as WriterLease)).toThrow(
      /leaseMetrics: lease must be a WriterLease, received an object/,
    );
    expect(() => leaseMetrics(createLease('x'), { registry: new Registry(), prefix: '9bad-' })).toThrow(
      /options\.prefix must match .*received "9bad-"/,
    );
  });
});
