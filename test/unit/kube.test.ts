import { describe, expect, it } from 'vitest';
import { resourceOfPath } from '../../src/runtime/kube.ts';

describe('resourceOfPath (the resource label of rest_client_requests_total)', () => {
  it('names the resource of core, group, namespaced and subresource paths, whatever the query', () => {
    expect(resourceOfPath('/api/v1/namespaces/steward-system/secrets/wh-creds')).toBe('secrets');
    expect(resourceOfPath('/api/v1/namespaces')).toBe('namespaces');
    expect(resourceOfPath('/api/v1/namespaces/analytics')).toBe('namespaces');
    expect(resourceOfPath('/apis/steward.dev/v1alpha1/namespaces/a/datasetaccesses/x/status')).toBe('datasetaccesses');
    expect(resourceOfPath('/apis/steward.dev/v1alpha1/warehouses?limit=500')).toBe('warehouses');
    expect(resourceOfPath('/apis/coordination.k8s.io/v1/namespaces/steward-system/leases/steward')).toBe('leases');
  });
});
