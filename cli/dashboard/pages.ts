import { html, raw } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import type { QueueName } from '../../contract/topology.ts';
import type { BackfillDetail, ProgressSample } from '../../domain/operations/backfills.ts';
import type { BulkJobDetail } from '../../domain/operations/bulk.ts';
import type { DeadLetterRecord } from '../../domain/operations/dead-letters.ts';
import type { ProfilesSummary } from '../../domain/operations/profiles.ts';
import {
  type Finding,
  formatAge,
  type OperationsStatus,
  Severity,
  traceUrl,
} from '../../domain/operations/status.ts';
import { formatCount as count } from '../format.ts';

/**
 * The dashboard's pages: server-side templates with hono/html (escaped by default; only
 * what is built here is raw). Each page is a layout around one `#content` element; the
 * refresher in the layout fetches the same URL with `x-adfleet-fragment: 1` and swaps
 * the element's content, so the page keeps itself current without a reload.
 */

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

export interface PageContext {
  readonly jaegerUrl: string;
  readonly refreshMs: number;
}

const STYLE = `
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
  header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 20px; align-items: baseline; }
  header a { color: #c9d4ff; text-decoration: none; }
  header strong { font-size: 16px; }
  main { padding: 12px 20px; }
  h2 { font-size: 15px; margin: 18px 0 6px; }
  table { border-collapse: collapse; background: #fff; min-width: 50%; }
  th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #e3e6eb; vertical-align: top; }
  th { background: #eef0f4; font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .crit { color: #a4161a; font-weight: 600; }
  .warn { color: #9a6700; }
  .ok { color: #1a7f37; }
  .finding { background: #fff; border-left: 4px solid #a4161a; padding: 6px 10px; margin: 4px 0; }
  .finding.warning { border-color: #d4a72c; }
  code { background: #eef0f4; padding: 1px 4px; }
  .muted { color: #687385; }
  svg { background: #fff; border: 1px solid #e3e6eb; }
`;

const REFRESHER = (refreshMs: number) => `
  (() => {
    const content = document.getElementById('content');
    const stamp = document.getElementById('updated');
    setInterval(async () => {
      try {
        const response = await fetch(location.href, { headers: { 'x-adfleet-fragment': '1' }, credentials: 'same-origin' });
        if (!response.ok) { stamp.textContent = 'refresh failed: HTTP ' + response.status; return; }
        content.innerHTML = await response.text();
        stamp.textContent = 'updated ' + new Date().toLocaleTimeString();
      } catch (error) { stamp.textContent = 'refresh failed: ' + error; }
    }, ${refreshMs});
  })();
`;

export function layout(context: PageContext, title: string, content: Html): Html {
  return html`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${title} · adfleet</title>
    <style>${raw(STYLE)}</style>
  </head>
  <body>
    <header>
      <strong>adfleet</strong>
      <a href="/">overview</a>
      <a href="/profiles">profiles</a>
      <a href="/dead-letters">dead letters</a>
      <span class="muted" id="updated">read-only; refreshes every ${context.refreshMs / 1000}s</span>
    </header>
    <main id="content">${content}</main>
    <script>${raw(REFRESHER(context.refreshMs))}</script>
  </body>
</html>`;
}

function traceLink(context: PageContext, traceId: string | null | undefined): Html {
  const url = traceUrl(context.jaegerUrl, traceId);
  return url === undefined ? html`<span class="muted">no trace</span>` : html`<a href="${url}">trace</a>`;
}

function findingBlock(finding: Finding): Html {
  const cls = finding.severity === Severity.Critical ? 'crit' : 'warn';
  return html`<div class="finding ${finding.severity}" data-area="${finding.area}">
    <span class="${cls}">${finding.severity.toUpperCase()}</span> ${finding.area} <strong>${finding.subject}</strong>:
    ${finding.message}
    ${finding.command === undefined ? '' : html`<div>run: <code>${finding.command}</code></div>`}
    ${finding.traceUrl === undefined ? '' : html`<div><a href="${finding.traceUrl}">trace in Jaeger</a></div>`}
  </div>`;
}

export function overviewPage(context: PageContext, status: OperationsStatus): Html {
  return html`
    <h1 class="${status.needsHuman ? 'crit' : 'ok'}">
      ${status.needsHuman ? 'Needs a human' : status.findings.length > 0 ? 'OK, with warnings' : 'All clear'}
    </h1>
    <p class="muted">as of ${status.at.toISOString()}</p>
    <section id="findings">
      <h2>Attention (${status.findings.length})</h2>
      ${status.findings.length === 0 ? html`<p class="ok">nothing past a threshold</p>` : status.findings.map(findingBlock)}
    </section>
    <section id="queues">
      <h2>Queues</h2>
      <table>
        <tr><th>queue</th><th>visible</th><th>in flight</th><th>delayed</th><th>oldest</th><th>dead letters</th><th>top reason</th></tr>
        ${status.queues.map((queue) => {
          const tooOld =
            queue.oldestAgeSeconds !== null && queue.oldestAgeSeconds > queue.maxMessageAgeSeconds;
          const [top] = queue.deadLetters.topReasons;
          return html`<tr data-queue="${queue.queue}">
            <td>${queue.queue}</td>
            <td class="num">${count(queue.visible)}</td>
            <td class="num">${count(queue.inFlight)}</td>
            <td class="num">${count(queue.delayed)}</td>
            <td class="num ${tooOld ? 'crit' : ''}" title="source: ${queue.oldestAgeSource}; threshold ${formatAge(queue.maxMessageAgeSeconds)}">${
              queue.oldestAgeSeconds === null
                ? queue.oldestAgeSource === 'unavailable'
                  ? 'n/a'
                  : '--'
                : formatAge(queue.oldestAgeSeconds)
            }</td>
            <td class="num ${queue.deadLetters.count > 0 ? 'crit' : ''}"><a href="/dead-letters/${queue.queue}">${count(queue.deadLetters.count)}</a></td>
            <td>${top === undefined ? '' : `${top.count}× ${top.reason}`}${queue.error === undefined ? '' : html`<span class="crit">cannot read: ${queue.error}</span>`}</td>
          </tr>`;
        })}
      </table>
    </section>
    <section id="workers">
      <h2>Worker processes</h2>
      <table>
        <tr><th>service</th><th>pid</th><th>host / task</th><th>version</th><th>state</th><th>last beat</th><th>last poll</th><th>in flight</th><th>handled</th><th>failed</th></tr>
        ${status.workers.flatMap((service) =>
          service.processes.length === 0
            ? [html`<tr><td>${service.service}</td><td colspan="9" class="muted">no process</td></tr>`]
            : service.processes.map(
                (process) => html`<tr data-pid="${process.pid}">
                  <td>${service.service}</td>
                  <td class="num">${process.pid}</td>
                  <td>${process.task ?? process.host}</td>
                  <td>${process.version}</td>
                  <td class="${process.stale ? 'crit' : process.ready ? 'ok' : 'warn'}">${
                    process.stale
                      ? 'stale: died without stopping'
                      : process.ready
                        ? 'ready'
                        : `not ready: ${process.notReadyReason ?? ''}`
                  }</td>
                  <td>${formatAge(process.beatAgeSeconds)} ago</td>
                  <td>${process.lastPollAt === null ? '--' : process.lastPollAt.toISOString()}</td>
                  <td class="num">${process.inFlight}</td>
                  <td class="num">${count(process.handled)}</td>
                  <td class="num">${count(process.failed)}</td>
                </tr>`,
              ),
        )}
      </table>
    </section>
    <section id="backfills">
      <h2>Backfills</h2>
      ${
        status.backfills.length === 0
          ? html`<p class="muted">none live or finished in the last day</p>`
          : html`<table>
        <tr><th>job</th><th>status</th><th>progress</th><th>rows</th><th>rows/s</th><th>ETA</th><th>throttle</th><th>trace</th></tr>
        ${status.backfills.map(
          ({ job, progress, stalled }) => html`<tr data-job="${job.id}">
            <td><a href="/backfills/${job.id}">${job.name}</a> <span class="muted">${job.id}</span></td>
            <td class="${stalled.length > 0 || job.status === 'failed' ? 'crit' : ''}">${job.status}${stalled.length > 0 ? ` (${stalled.length} chain(s) stalled)` : ''}</td>
            <td class="num">${(progress.fraction * 100).toFixed(1)}%</td>
            <td class="num">${count(progress.rowsProcessed)} of ~${count(job.rowsEstimate)}</td>
            <td class="num">${count(progress.rate)}</td>
            <td>${formatAge(progress.etaSeconds)}</td>
            <td>${progress.throttle?.state ?? '-'}</td>
            <td>${traceLink(context, job.traceId)}</td>
          </tr>`,
        )}
      </table>`
      }
    </section>
    <section id="bulk-jobs">
      <h2>Bulk jobs</h2>
      ${
        status.bulkJobs.length === 0
          ? html`<p class="muted">none live or finished in the last day</p>`
          : html`<table>
        <tr><th>job</th><th>status</th><th>progress</th><th>succeeded</th><th>failed</th><th>to do</th><th>items/s</th><th>ETA</th><th>trace</th></tr>
        ${status.bulkJobs.map(
          ({ job, progress, stuck, idleSeconds }) => html`<tr data-job="${job.id}">
            <td><a href="/bulk/${job.id}">${job.fileName}</a> <span class="muted">${job.id}</span></td>
            <td class="${stuck ? 'crit' : ''}">${job.status}${stuck ? ` (no change for ${formatAge(idleSeconds)})` : ''}</td>
            <td class="num">${(progress.fraction * 100).toFixed(1)}%</td>
            <td class="num">${count(job.counts.succeeded)}</td>
            <td class="num ${job.counts.failed > 0 ? 'warn' : ''}">${count(job.counts.failed)}</td>
            <td class="num">${count(job.counts.total - progress.done)}</td>
            <td class="num">${progress.itemsPerSecond.toFixed(1)}</td>
            <td>${formatAge(progress.etaSeconds)}</td>
            <td>${traceLink(context, job.traceId)}</td>
          </tr>`,
        )}
      </table>`
      }
    </section>
    <section id="profiles">
      <h2>Profiles</h2>
      <p>${count(status.profiles.total)} profiles;
        <span class="${status.profiles.stale > 0 ? 'warn' : 'ok'}">${count(status.profiles.stale)} not synced within ${formatAge(status.profiles.freshnessObjectiveSeconds)}</span>;
        <span class="${status.profiles.failing > 0 ? 'crit' : 'ok'}">${count(status.profiles.failing)} failing</span>; ${count(status.profiles.running)} syncing;
        oldest sync ${formatAge(status.profiles.oldestAgeSeconds)} ago. <a href="/profiles">stalest first</a></p>
    </section>
  `;
}

/** Rows/s over time as an inline SVG line: one polyline, axes labelled with the range. */
export function rateChart(samples: readonly ProgressSample[]): Html {
  const width = 640;
  const height = 160;
  if (samples.length < 2) {
    return html`<p class="muted" id="rate-chart">not enough samples yet (one every 5 s while the job moves)</p>`;
  }
  const first = samples[0]?.at.getTime() ?? 0;
  const last = samples.at(-1)?.at.getTime() ?? first;
  const span = Math.max(1, last - first);
  const peak = Math.max(1, ...samples.map((sample) => sample.rate));
  const points = samples
    .map((sample) => {
      const x = ((sample.at.getTime() - first) / span) * (width - 60) + 50;
      const y = height - 20 - (sample.rate / peak) * (height - 40);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(' ');
  return html`<svg id="rate-chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img"
      aria-label="rows per second over time, peak ${count(peak)}">
    <line x1="50" y1="${height - 20}" x2="${width - 10}" y2="${height - 20}" stroke="#687385" />
    <line x1="50" y1="20" x2="50" y2="${height - 20}" stroke="#687385" />
    <text x="4" y="24" font-size="11">${count(peak)}</text>
    <text x="4" y="${height - 22}" font-size="11">0</text>
    <text x="50" y="${height - 4}" font-size="11">${samples[0]?.at.toISOString().slice(11, 19)}</text>
    <text x="${width - 70}" y="${height - 4}" font-size="11">${samples.at(-1)?.at.toISOString().slice(11, 19)}</text>
    <polyline fill="none" stroke="#3056d3" stroke-width="2" points="${points}" />
  </svg>`;
}

export function backfillPage(context: PageContext, detail: BackfillDetail): Html {
  const { job, progress } = detail;
  return html`
    <h1>backfill ${job.name}</h1>
    <p><span class="muted">${job.id}</span> · ${traceLink(context, job.traceId)}</p>
    <table id="summary">
      <tr><th>status</th><td class="${detail.stalled.length > 0 || job.status === 'failed' ? 'crit' : ''}">${job.status}${job.error === null ? '' : `: ${job.error}`}</td></tr>
      <tr><th>progress</th><td>${(progress.fraction * 100).toFixed(1)}% · ${count(progress.rowsProcessed)} of ~${count(job.rowsEstimate)} rows</td></tr>
      <tr><th>rate</th><td>${count(progress.rate)} rows/s · ETA ${formatAge(progress.etaSeconds)}${job.maxRate === null ? '' : ` · ceiling ${count(job.maxRate)} rows/s`}</td></tr>
      <tr><th>throttle</th><td>${progress.throttle === null ? 'no decision yet' : `${progress.throttle.state}: ${progress.throttle.reason}`}</td></tr>
      <tr><th>started</th><td>${job.createdAt.toISOString()}${job.finishedAt === null ? '' : ` · finished ${job.finishedAt.toISOString()}`}</td></tr>
    </table>
    ${detail.stalled.map(
      (
        chain,
      ) => html`<div class="finding critical">chain ${chain.partition} has made no progress for ${formatAge(chain.idleSeconds)}
        (stall limit ${formatAge(job.stallAfterMs / 1000)}); the watchdog restarts it from its checkpoint.</div>`,
    )}
    <p>Actions are CLI commands: <code>adfleet backfill pause ${job.id}</code> · <code>adfleet backfill resume ${job.id}</code> ·
      <code>adfleet backfill cancel ${job.id}</code></p>
    <h2>Rows per second over time</h2>
    ${rateChart(detail.samples)}
    <h2>Chains</h2>
    <table id="partitions">
      <tr><th>chain</th><th>status</th><th>cursor</th><th>rows</th><th>rows/s</th><th>throttle</th><th>throttled</th><th>updated</th><th>trace</th></tr>
      ${detail.partitions.map(
        (partition) => html`<tr>
          <td class="num">${partition.partition}</td>
          <td>${partition.status}</td>
          <td class="num">${count(partition.cursor)} / ${count(partition.rangeEnd)}</td>
          <td class="num">${count(partition.rowsProcessed)}</td>
          <td class="num">${count(partition.currentRate)}</td>
          <td>${partition.throttleState}</td>
          <td>${formatAge(partition.throttledMs / 1000)}</td>
          <td>${partition.updatedAt.toISOString()}</td>
          <td>${traceLink(context, partition.traceId)}</td>
        </tr>`,
      )}
    </table>
    <h2>Throttle decisions (latest first)</h2>
    ${
      detail.throttleEvents.length === 0
        ? html`<p class="muted">none recorded</p>`
        : html`<table id="throttle-events">
      <tr><th>at</th><th>chain</th><th>state</th><th>reason</th><th>probe</th><th>connections</th><th>lag</th><th>limit</th></tr>
      ${detail.throttleEvents.map(
        (event) => html`<tr>
          <td>${event.at.toISOString()}</td>
          <td class="num">${event.partition}</td>
          <td>${event.state}</td>
          <td>${event.reason}</td>
          <td class="num">${event.probeMs === null ? '--' : `${event.probeMs.toFixed(1)} ms`}</td>
          <td class="num">${event.activeConnections ?? '--'}</td>
          <td class="num">${event.replicationLagMs === null ? '--' : `${Math.round(event.replicationLagMs)} ms`}</td>
          <td class="num">${event.rateLimit === null ? 'unlimited' : `${count(event.rateLimit)} rows/s`}</td>
        </tr>`,
      )}
    </table>`
    }
  `;
}

/** Items finished per time bucket since dispatch, as bars. */
function finishedChart(buckets: BulkJobDetail['finishedOverTime']): Html {
  const width = 640;
  const height = 160;
  if (buckets.length === 0) return html`<p class="muted" id="progress-chart">no item finished yet</p>`;
  const peak = Math.max(1, ...buckets.map((bucket) => bucket.items));
  const first = buckets[0]?.at.getTime() ?? 0;
  const span = Math.max(1, (buckets.at(-1)?.at.getTime() ?? first) - first);
  const barWidth = Math.max(2, (width - 60) / Math.max(buckets.length, 20) - 1);
  return html`<svg id="progress-chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img"
      aria-label="items finished over time, peak ${count(peak)} per bucket">
    <line x1="50" y1="${height - 20}" x2="${width - 10}" y2="${height - 20}" stroke="#687385" />
    <text x="4" y="24" font-size="11">${count(peak)}</text>
    <text x="4" y="${height - 22}" font-size="11">0</text>
    <text x="50" y="${height - 4}" font-size="11">${buckets[0]?.at.toISOString().slice(11, 19)}</text>
    <text x="${width - 70}" y="${height - 4}" font-size="11">${buckets.at(-1)?.at.toISOString().slice(11, 19)}</text>
    ${buckets.map((bucket) => {
      const x = 50 + ((bucket.at.getTime() - first) / span) * (width - 70);
      const barHeight = (bucket.items / peak) * (height - 40);
      return html`<rect x="${x.toFixed(1)}" y="${(height - 20 - barHeight).toFixed(1)}" width="${barWidth.toFixed(1)}" height="${barHeight.toFixed(1)}" fill="#3056d3"><title>${bucket.items} items</title></rect>`;
    })}
  </svg>`;
}

export function bulkJobPage(context: PageContext, detail: BulkJobDetail): Html {
  const { job, progress } = detail;
  return html`
    <h1>bulk job ${job.fileName}</h1>
    <p><span class="muted">${job.id}</span> · submitted by ${job.submittedBy} · ${traceLink(context, job.traceId)}</p>
    <table id="summary">
      <tr><th>status</th><td class="${detail.stuck ? 'crit' : ''}">${job.status}${detail.stuck ? ` — no item has changed for ${formatAge(detail.idleSeconds)}` : ''}${job.error === null ? '' : `: ${job.error}`}</td></tr>
      <tr><th>progress</th><td>${(progress.fraction * 100).toFixed(1)}% · ${count(progress.done)} of ${count(job.counts.total)} items final · ${progress.itemsPerSecond.toFixed(1)} items/s · ETA ${formatAge(progress.etaSeconds)}</td></tr>
      <tr><th>counts</th><td id="counts">succeeded ${count(job.counts.succeeded)} · failed ${count(job.counts.failed)} · cancelled ${count(job.counts.cancelled)} · pending ${count(job.counts.pending)} · running ${count(job.counts.running)} · waiting to retry ${count(job.counts.retry)}</td></tr>
      <tr><th>submitted</th><td>${job.createdAt.toISOString()}${job.finishedAt === null ? '' : ` · finished ${job.finishedAt.toISOString()}`}</td></tr>
    </table>
    <p>Report: <a id="report-csv" href="/bulk/${job.id}/report.csv" download>every item (CSV)</a> ·
      <a id="failed-csv" href="/bulk/${job.id}/report.csv?failed=1" download>failed items (CSV)</a>.
      Actions are CLI commands: <code>adfleet bulk retry-failed ${job.id}</code> · <code>adfleet bulk cancel ${job.id}</code></p>
    <h2>Items finished over time</h2>
    ${finishedChart(detail.finishedOverTime)}
    <h2>Failures by Amazon's code</h2>
    ${
      detail.failures.length === 0
        ? html`<p class="muted">no failed items</p>`
        : html`<table id="failure-codes"><tr><th>code</th><th>items</th><th>example</th></tr>
      ${detail.failures.map((failure) => html`<tr><td>${failure.code}</td><td class="num">${count(failure.count)}</td><td>${failure.example}</td></tr>`)}
    </table>`
    }
    <h2>Failed items${job.counts.failed > detail.failedItems.length ? ` (first ${detail.failedItems.length} of ${count(job.counts.failed)})` : ''}</h2>
    ${
      detail.failedItems.length === 0
        ? html`<p class="muted">none</p>`
        : html`<table id="failed-items">
      <tr><th>line</th><th>profile</th><th>entity</th><th>change</th><th>attempts</th><th>code</th><th>Amazon's answer</th></tr>
      ${detail.failedItems.map(
        (item) => html`<tr>
          <td class="num">${item.line}</td>
          <td class="num">${item.profileId}</td>
          <td>${item.entityType} ${item.entityId}</td>
          <td><code>${JSON.stringify(item.change)}</code></td>
          <td class="num">${item.attempts}</td>
          <td>${item.errorCode ?? ''}</td>
          <td>${item.errorMessage ?? ''}</td>
        </tr>`,
      )}
    </table>`
    }
  `;
}

export function profilesPage(profiles: ProfilesSummary): Html {
  return html`
    <h1>Profiles, stalest first</h1>
    <p>${count(profiles.total)} profiles; ${count(profiles.stale)} not synced within ${formatAge(profiles.freshnessObjectiveSeconds)};
      ${count(profiles.failing)} failing; ${count(profiles.running)} syncing now.
      Run <code>adfleet sync --profile ID</code> for one, <code>adfleet sync-all</code> for every profile,
      <code>adfleet sync runs --profile ID</code> for a profile's runs.</p>
    <table id="profiles">
      <tr><th>profile</th><th>account</th><th>last good sync</th><th>age</th><th>now</th><th>last error</th></tr>
      ${profiles.stalest.map(
        (
          profile,
        ) => html`<tr data-profile="${profile.profileId}" class="${profile.failing !== undefined ? 'crit' : profile.pastSlo ? 'warn' : ''}">
          <td class="num">${profile.profileId}</td>
          <td>${profile.accountName}</td>
          <td>${profile.lastGoodSyncAt === undefined ? 'never' : profile.lastGoodSyncAt.toISOString()}</td>
          <td class="num">${formatAge(profile.ageSeconds)}</td>
          <td>${profile.running !== undefined ? `syncing (${profile.running.pages} pages)` : profile.queuedAt !== undefined ? 'queued' : ''}</td>
          <td>${profile.failing === undefined ? '' : `failing since ${profile.failing.since.toISOString()}: ${profile.failing.lastError}`}</td>
        </tr>`,
      )}
    </table>
  `;
}

export function deadLettersIndexPage(status: OperationsStatus): Html {
  return html`
    <h1>Dead letters</h1>
    <table id="dead-letter-queues">
      <tr><th>queue</th><th>dead letters</th><th>top reasons</th></tr>
      ${status.queues.map(
        (queue) => html`<tr>
          <td><a href="/dead-letters/${queue.queue}">${queue.queue}</a></td>
          <td class="num ${queue.deadLetters.count > 0 ? 'crit' : ''}">${count(queue.deadLetters.count)}</td>
          <td>${queue.deadLetters.topReasons.map((top) => html`<div>${top.count}× ${top.reason}</div>`)}</td>
        </tr>`,
      )}
    </table>
  `;
}

export function deadLettersPage(
  queue: QueueName,
  deadLetters: { records: readonly DeadLetterRecord[]; count: number },
): Html {
  return html`
    <h1>Dead letters of ${queue}</h1>
    <p>${count(deadLetters.count)} message(s); reasons read from ${count(deadLetters.records.length)}.
      Fix the cause, then <code>adfleet dlq redrive --queue ${queue}</code> (<code>adfleet dlq list --queue ${queue}</code> in a terminal).</p>
    <table id="dead-letters">
      <tr><th>dead-lettered at</th><th>type</th><th>receives</th><th>message</th><th>reason</th></tr>
      ${deadLetters.records.map(
        (record) => html`<tr>
          <td>${record.at}</td>
          <td>${record.type}</td>
          <td class="num">${record.receiveCount ?? '?'}</td>
          <td>${record.messageId}</td>
          <td>${record.reason}</td>
        </tr>`,
      )}
    </table>
  `;
}

export function notFoundPage(what: string): Html {
  return html`<h1>Not found</h1><p>${what}</p>`;
}
