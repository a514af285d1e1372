import { PeerDependencyMissingError, requirePeer } from '../src/requirePeer';

describe('requirePeer', () => {
  it('loads an installed package', () => {
    expect(typeof requirePeer<typeof import('prom-client')>('prom-client', 'leaseMetrics').Registry).toBe('function');
  });

  it('names a missing package and the command that installs it', () => {
    const load = () => requirePeer('rx-writer-lease-no-such-peer', 'leaseMetrics');
    expect(load).toThrow(PeerDependencyMissingError);
    expect(load).toThrow(
      'leaseMetrics needs the package "rx-writer-lease-no-such-peer": ' +
        'install it with `npm install rx-writer-lease-no-such-peer`',
    );
  });
});
