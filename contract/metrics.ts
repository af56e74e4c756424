/** Namespace of every metric the fleet writes; the alarms in infra/ read the same one. */
export const METRICS_NAMESPACE = 'adfleet';

/** The metric names the workers emit and the alarms in infra/ watch: one list for both. */
export const METRIC_NAMES = {
  processed: 'MessagesProcessed',
  failed: 'MessagesFailed',
  deadLettered: 'MessagesDeadLettered',
  deferred: 'MessagesDeferred',
  handlerDuration: 'HandlerDurationMs',
  /** Put back without spending their budget (a dependency outage, a drain). */
  released: 'MessagesReleased',
  /** DLQ, deferral or release sends that failed: the message came back instead. */
  sendFailures: 'MessageSendFailures',
  /** Dependencies whose circuit is open in a worker process, at the time of the line. */
  dependenciesUnavailable: 'DependenciesUnavailable',
  oldestProfileSyncAge: 'OldestProfileSyncAgeSeconds',
  profilesPastSyncSlo: 'ProfilesPastSyncSlo',
  profilesFailingSync: 'ProfilesFailingSync',
} as const;

/**
 * Every profile synced within 26 h: the nightly run (03:00 UTC) plus two hours for it to
 * finish. Profiles older than that missed a night. The freshness alarm and `adfleet status`
 * both hold profiles to it.
 */
export const PROFILE_SYNC_FRESHNESS_SECONDS = 26 * 3_600;
