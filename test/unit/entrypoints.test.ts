// Steward runs with the same Node flags however it is started: the image, `make run`, `npm start`,
// bin/steward and the demo (the integration tests read them from the Dockerfile itself).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../stack/env.ts';

const read = (f: string) => readFileSync(join(REPO, f), 'utf8');
const imageFlags = (JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'))![1]!) as string[]).slice(1).filter((a) => a.startsWith('--'));

describe('Node flags', () => {
  it('the image keeps the SQL parser on the baseline compiler, the young generation small and the heap close to what it holds', () => {
    expect(imageFlags).toEqual(['--liftoff-only', '--max-semi-space-size=1', '--heap-growing-percent=50']);
  });
  it.each(['Makefile', 'package.json', 'bin/steward', 'test/demo/demo.ts'])('%s starts Node with the same flags', (file) => {
    const text = read(file);
    for (const flag of imageFlags) expect(text).toContain(flag);
  });
});

describe('the image', () => {
  it('runs the entry point tsconfig.build.json compiles, after building it in its first stage', () => {
    const outDir = /"outDir":\s*"([^"]+)"/.exec(read('tsconfig.build.json'))?.[1];
    const argv = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'))![1]!) as string[];
    expect(argv.at(-1)).toBe(`${outDir}/main.js`);
    expect(read('Dockerfile')).toContain('RUN npx tsc -p tsconfig.build.json');
    expect(read('Dockerfile')).toContain(`COPY --from=build /app/${outDir} ./${outDir}`);
  });
});
