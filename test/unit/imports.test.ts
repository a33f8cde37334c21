// The direction of imports (docs/architecture.md), checked on every file of src/: a wrong-way
// import fails here, with the file and what it imports, instead of waiting for a reviewer.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../stack/env.ts';

const SRC = join(REPO, 'src');

/** Which top-level rooms of src/ each room may import from (its own always). */
const ALLOWED: Record<string, readonly string[]> = {
  api: [],
  runtime: [],
  audit: ['runtime'],
  governance: ['api'],
  drivers: ['governance', 'api', 'audit', 'runtime'],
  controllers: ['drivers', 'governance', 'api', 'audit', 'runtime'],
  cli: ['drivers', 'governance', 'api', 'audit', 'runtime'],
  'main.ts': ['controllers', 'drivers', 'governance', 'api', 'audit', 'runtime'],
};
/** Pure helpers of runtime/ that governance may use: no I/O, no controller machinery. */
const PURE_RUNTIME = new Set(['runtime/duration.ts']);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'/gm)].map((m) => relative(SRC, resolve(dirname(file), m[1]!)));
}

const room = (path: string) => path.split('/')[0]!;

describe('imports point one way', () => {
  const edges = files(SRC).flatMap((f) => imports(f).map((to) => ({ from: relative(SRC, f), to })));

  it('reads the imports it checks', () => {
    expect(edges.length).toBeGreaterThan(100);
    expect(edges).toContainEqual({ from: 'controllers/datasetaccess.ts', to: 'governance/policy.ts' });
  });

  it('no room imports one it may not', () => {
    const wrong = edges.filter(({ from, to }) => {
      const [a, b] = [room(from), room(to)];
      if (a === b) return false;
      if (a === 'governance' && PURE_RUNTIME.has(to)) return false;
      return !(ALLOWED[a] ?? []).includes(b);
    });
    expect(wrong.map(({ from, to }) => `${from} -> ${to}`)).toEqual([]);
  });

  it('every room is known, so a new one gets its rule', () => {
    expect([...new Set(edges.map((e) => room(e.from)))].filter((r) => !(r in ALLOWED))).toEqual([]);
  });

  it('controllers are glue: none imports pg, opens a transaction or takes a lock (the drivers do)', () => {
    const controllers = files(join(SRC, 'controllers'));
    expect(controllers.length).toBeGreaterThan(3);
    const found = controllers.flatMap((f) => {
      const text = readFileSync(f, 'utf8');
      return [
        ...(/from\s+'pg'/.test(text) ? [`${relative(SRC, f)} imports pg`] : []),
        ...[...text.matchAll(/BEGIN|COMMIT|ROLLBACK|SAVEPOINT|pg_advisory/g)].map((m) => `${relative(SRC, f)}: ${m[0]}`),
      ];
    });
    expect(found).toEqual([]);
  });

  it('only the session takes advisory locks', () => {
    const takers = files(SRC).filter((f) => readFileSync(f, 'utf8').includes('pg_advisory'));
    expect(takers.map((f) => relative(SRC, f))).toEqual(['drivers/postgres/session.ts']);
  });
});
