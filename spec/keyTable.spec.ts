import { KeyTable, type KeyEntry } from '../src/internal/keyTable';
import { RunningUnit, type Submission } from '../src/internal/runningUnit';
import { WorkResult } from '../src/types';

const work = () => WorkResult.Extend;

/** A table with helpers that play the lease's part: submit, take a due key, run it to its end. */
function table() {
  const keys = new KeyTable();
  let lastId = 0;
  const submit = (key: string, due = 0): Submission => {
    const submission = { id: ++lastId, work };
    keys.submit(key, submission, due);
    return submission;
  };
  /** Takes the next due key and finishes its unit, as a synchronous unit that settled would. */
  const finishNext = (now = 0): KeyEntry => {
    const entry = keys.takeDue(now, Infinity);
    if (entry?.pending === undefined) throw new Error('no due key with pending work');
    const submission = entry.pending;
    keys.markRunning(entry, new RunningUnit(entry, entry.key, submission, now));
    keys.endRun(entry, submission);
    return entry;
  };
  return { keys, submit, finishNext };
}

describe('KeyTable', () => {
  it('forgets an entry as soon as it holds nothing, when forgetting is not deferred', () => {
    const { keys, submit, finishNext } = table();
    submit('a');
    submit('b');
    finishNext();
    expect(keys.entryCount).toBe(1);
    expect(keys.get('a')).toBeUndefined();
    expect(keys.pendingKeys()).toEqual(['b']);
  });

  describe('deferred forgetting (one pass over due keys)', () => {
    it('keeps finished entries until forgetIdle, then holds none when no key has work left', () => {
      const { keys, submit, finishNext } = table();
      for (const key of ['a', 'b', 'c']) submit(key);
      keys.deferForgetting();
      for (let i = 0; i < 3; i++) finishNext();
      expect(keys.entryCount).toBe(3);
      expect(keys.pendingCount).toBe(0);
      expect(keys.pendingKeys()).toEqual([]);
      keys.forgetIdle();
      expect(keys.entryCount).toBe(0);
      expect(keys.get('a')).toBeUndefined();
    });

    it('forgets only the idle entries when some keys still hold work', () => {
      const { keys, submit, finishNext } = table();
      submit('a');
      submit('b');
      submit('later', 100);
      keys.deferForgetting();
      finishNext();
      finishNext();
      keys.forgetIdle();
      expect(keys.entryCount).toBe(1);
      expect(keys.pendingKeys()).toEqual(['later']);
      expect(keys.peekDue()).toBe(100);
    });

    it('keeps an entry that got new work before the end of the pass, last in submission order', () => {
      const { keys, submit, finishNext } = table();
      submit('a');
      submit('b', 100);
      keys.deferForgetting();
      finishNext();
      submit('a', 5);
      keys.forgetIdle();
      // As if 'a' had been forgotten and submitted anew: after 'b'.
      expect(keys.pendingKeys()).toEqual(['b', 'a']);
      expect(keys.entryCount).toBe(2);
      expect(finishNext(5).key).toBe('a');
      expect(keys.entryCount).toBe(1);
    });

    it('forgets an entry that went idle twice in the pass, and keeps the others', () => {
      const { keys, submit, finishNext } = table();
      submit('a');
      submit('b', 100);
      keys.deferForgetting();
      finishNext();
      submit('a');
      finishNext();
      expect(keys.entryCount).toBe(2);
      keys.forgetIdle();
      expect(keys.entryCount).toBe(1);
      expect(keys.get('a')).toBeUndefined();
      expect(keys.pendingKeys()).toEqual(['b']);
    });

    it('deletes at once again after forgetIdle', () => {
      const { keys, submit, finishNext } = table();
      submit('a');
      keys.deferForgetting();
      keys.forgetIdle();
      submit('b');
      finishNext();
      finishNext();
      expect(keys.entryCount).toBe(0);
    });

    it('forgets an entry whose work was withdrawn during the pass', () => {
      const { keys, submit } = table();
      submit('a');
      submit('b');
      keys.deferForgetting();
      keys.forgetPending(keys.get('a')!);
      expect(keys.entryCount).toBe(2);
      keys.forgetIdle();
      expect(keys.entryCount).toBe(1);
      expect(keys.pendingKeys()).toEqual(['b']);
    });
  });
});
