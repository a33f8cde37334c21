// Prometheus metrics under controller-runtime's names, so existing dashboards and alerts work:
// controller_runtime_reconcile_total{controller,result}, controller_runtime_reconcile_errors_total,
// controller_runtime_reconcile_time_seconds, controller_runtime_active_workers, workqueue_depth,
// workqueue_adds_total, workqueue_retries_total, workqueue_queue_duration_seconds,
// leader_election_master_status, and client-go's rest_client_requests_total (with the resource);
// Steward's own: steward_read_ahead_seconds (the batched resync's reads, Controller readAhead).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueMetrics } from './queue.ts';

export class Metrics {
  readonly registry = new Registry();
  readonly reconcileTotal = new Counter({
    name: 'controller_runtime_reconcile_total',
    help: 'Total number of reconciliations per controller and result.',
    labelNames: ['controller', 'result'] as const,
    registers: [this.registry],
  });
  readonly restClientRequests = new Counter({
    name: 'rest_client_requests_total',
    help: 'Requests to the Kubernetes API, by method, resource and status code (0: no answer). Watches are not counted.',
    labelNames: ['method', 'resource', 'code'] as const,
    registers: [this.registry],
  });
  readonly awsCalls = new Counter({
    name: 'steward_aws_calls_total',
    help: 'Calls to AWS (IAM, S3) by service and operation.',
    labelNames: ['service', 'operation'] as const,
    registers: [this.registry],
  });
  readonly reviewReads = new Counter({
    name: 'steward_review_reads_total',
    help: 'Readings of a system under an AccessReview (PostgreSQL: one catalog query; S3: the IAM reads of each scoped role).',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'controller_runtime_reconcile_errors_total',
    help: 'Total number of reconciliation errors per controller.',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });
  readonly reconcileTime = new Histogram({
    name: 'controller_runtime_reconcile_time_seconds',
    help: 'Length of time per reconciliation per controller.',
    labelNames: ['controller'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly readAheadTime = new Histogram({
    name: 'steward_read_ahead_seconds',
    help: 'Length of time of one batched read ahead (a resync chunk) per controller.',
    labelNames: ['controller'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly activeWorkers = new Gauge({
    name: 'controller_runtime_active_workers',
    help: 'Number of currently used workers per controller.',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({ name: 'workqueue_depth', help: 'Current depth of workqueue.', labelNames: ['name'] as const, registers: [this.registry] });
  readonly queueAdds = new Counter({
    name: 'workqueue_adds_total',
    help: 'Total number of adds handled by workqueue.',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });
  readonly queueRetries = new Counter({
    name: 'workqueue_retries_total',
    help: 'Total number of retries handled by workqueue.',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });
  readonly queueWait = new Histogram({
    name: 'workqueue_queue_duration_seconds',
    help: 'How long in seconds an item stays in workqueue before being requested.',
    labelNames: ['name'] as const,
    buckets: [0.001, 0.01, 0.1, 1, 10, 100],
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: 'leader_election_master_status',
    help: 'Whether this process is the leader (1) or not (0).',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  queue(name: string): QueueMetrics {
    return {
      depth: (n) => this.queueDepth.set({ name }, n),
      added: () => this.queueAdds.inc({ name }),
      retried: () => this.queueRetries.inc({ name }),
      waited: (s) => this.queueWait.observe({ name }, s),
    };
  }
}
