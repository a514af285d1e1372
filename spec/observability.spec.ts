import { Writable } from 'node:stream';
import pino from 'pino';
import { WorkResult, WriterLease, constantBackoff } from '../src';
import { waitFor } from './support/waitFor';

// The pino example of docs/observability.md, run as written.
describe('docs/observability.md: structured logs with pino', () => {
  it('logs state changes at info and failed units at error with the error serialized', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    });
    const log = pino({ name: 'status-writer', level: 'debug' }, sink);
    const lease = new WriterLease({
      leaseDuration: 1_000,
      retryInterval: 5,
      backoff: constantBackoff(5),
      name: 'routes',
    });
    const LEVELS = { error: 'error', 'backoff-error': 'warn', state: 'info', stopped: 'info' } as const;

    lease.events$.subscribe((event) => {
      const { type, lease: leaseName, ...fields } = event;
      const level = LEVELS[type as keyof typeof LEVELS] ?? 'debug';
      if (event.type === 'error') {
        log[level]({ lease: leaseName, key: event.key, id: event.id, err: event.error }, 'unit of work failed');
      } else {
        log[level]({ lease: leaseName, event: type, ...fields }, type);
      }
    });

    const processing = lease.run();
    let calls = 0;
    lease.try('a', () => {
      if (calls++ === 0) throw new Error('connection reset');
      return WorkResult.Extend;
    });
    await waitFor(() => lease.state.state === 'leader', 'leader');
    processing.unsubscribe();

    const failed = lines.find((line) => line.msg === 'unit of work failed');
    expect(failed).toMatchObject({ level: 50, lease: 'routes', key: 'a', err: { message: 'connection reset' } });
    const states = lines.filter((line) => line.event === 'state');
    expect(states.map((line) => (line.snapshot as { state: string }).state)).toEqual(['follower', 'leader']);
    expect(states[0]).toMatchObject({ level: 30, name: 'status-writer' });
    expect(lines.some((line) => line.event === 'stopped')).toBe(true);
  });
});
