import { describe, expect, it } from 'vitest';
import { slim } from '../../src/runtime/informer.ts';

describe('slim (what the informer cache keeps of an object)', () => {
  it("drops managedFields and kubectl's last-applied copy, and keeps every other annotation, label and field", () => {
    const obj = {
      metadata: {
        name: 'a',
        namespace: 'n',
        resourceVersion: '7',
        labels: { team: 'x' },
        annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"big":"copy"}', 'steward.dev/rotate': 'now' },
        managedFields: [{ manager: 'kubectl', fieldsV1: {} }],
      },
      spec: { principal: { role: 'r' } },
    };
    expect(slim(obj)).toEqual({
      metadata: { name: 'a', namespace: 'n', resourceVersion: '7', labels: { team: 'x' }, annotations: { 'steward.dev/rotate': 'now' } },
      spec: { principal: { role: 'r' } },
    });
  });
});
