/** Namespace of every metric the fleet writes; the alarms in infra/ read the same one. */
export const METRICS_NAMESPACE = 'adfleet';

/** The metric names the workers emit and the alarms in infra/ watch: one list for both. */
export const METRIC_NAMES = {
  processed: 'MessagesProcessed',
  failed: 'MessagesFailed',
  deadLettered: 'MessagesDeadLettered',
  deferred: 'MessagesDeferred',
  handlerDuration: 'HandlerDurationMs',
  oldestProfileSyncAge: 'OldestProfileSyncAgeSeconds',
} as const;
