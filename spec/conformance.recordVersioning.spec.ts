import { MemoryStore, StoreClosedError } from '../src';
import { recordStoreConformance } from '../src/testing';

// The contract on a store with one version per record (as a Kubernetes object's resourceVersion):
// every test of the suite holds for it too. The suite's last test closes the store.
let memory: MemoryStore | undefined;
recordStoreConformance(
  'the RecordStore contract, one version per record (memory)',
  async () => (memory ??= new MemoryStore({ versioning: 'record' })),
  { closedError: StoreClosedError },
);
