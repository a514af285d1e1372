import { EventEmitter } from 'node:events';
import { format } from 'node:util';
import { MemoryStore, WriterLease } from '../../src';

/**
 * What an example of the guides may use without declaring it, as their text
 * does ("with `lease` a running WriterLease..."); and what the runner needs
 * to check it: what it printed, the tests it declared, the signal handlers it
 * installed.
 */
export interface ExampleContext {
  /** A running lease named `routes`. */
  readonly lease: WriterLease;
  readonly store: MemoryStore;
  /** Prints into {@link ExampleContext.printed}. */
  readonly console: Pick<Console, 'log' | 'info' | 'warn' | 'error'>;
  /** `process`, except that signal handlers are kept for the runner to call. */
  readonly process: NodeJS.Process;
  readonly it: (name: string, test: () => unknown) => void;
  readonly test: (name: string, test: () => unknown) => void;
  readonly describe: (name: string, body: () => void) => void;
  readonly printed: string[];
  /** Runs what the example left to run (its tests, its SIGTERM handler), then stops the lease and the store. */
  finish(): Promise<void>;
}

/**
 * A fresh context for one example.
 *
 * @returns The context.
 */
export function exampleContext(): ExampleContext {
  const lease = new WriterLease({ leaseDuration: 10_000, retryInterval: 1_000, name: 'routes' });
  const processing = lease.run();
  const store = new MemoryStore();
  const printed: string[] = [];
  const print = (...parts: unknown[]) => void printed.push(format(...parts));
  const tests: (() => unknown)[] = [];
  const signals = new EventEmitter();
  const fakeProcess = new Proxy(process, {
    get(target, property, receiver) {
      if (property === 'on' || property === 'once') {
        return (event: string, listener: (...args: unknown[]) => void) => {
          signals[property](event, listener);
          return receiver as unknown;
        };
      }
      return Reflect.get(target, property, target) as unknown;
    },
  });
  return {
    lease,
    store,
    console: { log: print, info: print, warn: print, error: print },
    process: fakeProcess,
    it: (_name, test) => void tests.push(test),
    test: (_name, test) => void tests.push(test),
    describe: (_name, body) => body(),
    printed,
    async finish() {
      for (const test of tests) await test();
      signals.emit('SIGTERM', 'SIGTERM');
      processing.unsubscribe();
      lease.dispose();
      await store.close();
    },
  };
}
