import { decodeChanges } from '../src/stores/redisRecords';

describe('decodeChanges: the messages of the Redis write script', () => {
  it('reads a change alone', () => {
    expect(decodeChanges('{"kind":"spec","key":"a","version":7,"value":{"generation":1}}')).toEqual([
      { kind: 'spec', key: 'a', version: 7, value: { generation: 1 } },
    ]);
  });

  it('reads the changes of one script call, in the order they were made, a deletion as no value', () => {
    const message =
      '[{"kind":"status","key":"b","version":8,"value":{"generation":2}},{"kind":"spec","key":"a","version":9,"value":null}]';
    expect(decodeChanges(message)).toEqual([
      { kind: 'status', key: 'b', version: 8, value: { generation: 2 } },
      { kind: 'spec', key: 'a', version: 9, value: undefined },
    ]);
  });

  it.each(['hello', '', '42', 'null', '"text"', '[1,null]'])(
    'reads no change from another publisher’s message %j, and does not throw',
    (message) => {
      expect(decodeChanges(message)).toEqual([]);
    },
  );
});
