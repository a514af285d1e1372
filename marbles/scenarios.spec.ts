import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { map, skip, type Observable } from 'rxjs';
import type { WriterLease } from '../src';
import { renderDiagram } from './diagram';
import { scenarios, type OutputRow } from './scenarios';
import { createLease, marbles, record, runs } from './support';

const DIAGRAMS = join(__dirname, '..', 'docs', 'diagrams');

function streamOf(lease: WriterLease, stream: OutputRow['stream']): Observable<unknown> {
  switch (stream) {
    case 'runs':
      return runs(lease);
    case 'leader':
      return record(lease.leader$);
    case 'state':
      return record(
        lease.state$.pipe(
          skip(1),
          map(({ state, expires }) => `${state}/${expires}`),
        ),
      );
  }
}

describe.each(scenarios)('guide scenario: $title', (scenario) => {
  it('behaves as its diagram says', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler, scenario.options);
      lease.run();
      const outputs = scenario.outputs.map(({ stream }) => streamOf(lease, stream));
      for (const { marble, acts } of scenario.inputs) hot(marble, acts).subscribe((act) => act(lease));
      scenario.outputs.forEach(({ marble, values }, i) => expectObservable(outputs[i]).toBe(marble, values));
    });
  });

  // `npm run diagrams` redraws them; this test keeps the committed pictures in step.
  it('has an up-to-date picture in docs/diagrams', () => {
    const file = join(DIAGRAMS, `${scenario.id}.svg`);
    const drawn = renderDiagram(scenario);
    if (process.env.UPDATE_DIAGRAMS) {
      mkdirSync(DIAGRAMS, { recursive: true });
      writeFileSync(file, drawn);
    }
    expect(existsSync(file) ? readFileSync(file, 'utf8') : 'missing: run npm run diagrams').toBe(drawn);
  });
});
