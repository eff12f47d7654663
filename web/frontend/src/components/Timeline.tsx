import { useId, useState } from 'react'

import { api } from '../api'
import { formatTime } from '../format'
import { useLoad } from '../hooks'
import type { OrderEvent } from '../types'
import { ErrorAlert, Loading, Money } from './Feedback'
import { StatusBadge } from './StatusBadge'

const TITLES: Record<string, string> = {
  OrderPlaced: 'Order placed',
  PaymentAttempted: 'Payment attempted',
  PaymentCharged: 'Payment charged',
  PaymentAttemptFailed: 'Payment attempt declined',
  PaymentSucceeded: 'Payment succeeded',
  PaymentFailed: 'Payment failed',
  PaymentRetryRequested: 'Payment retry requested',
  PaymentRefunded: 'Payment refunded',
  OrderCancelled: 'Order cancelled',
}

function text(value: unknown): string {
  return value === undefined || value === null ? '' : String(value)
}

/** One line about what the event says (amounts shown as the API wrote them). */
export function summary(event: OrderEvent): string {
  const d = event.data
  const money = d.amount !== undefined ? `${text(d.amount)} ${text(d.currency)}`.trim() : ''
  switch (event.type) {
    case 'OrderPlaced': {
      const items = Array.isArray(d.items) ? d.items.length : 0
      return `${items} ${items === 1 ? 'line' : 'lines'}, total ${text(d.total)} ${text(d.currency)}`
    }
    case 'PaymentAttempted':
      return `Attempt ${text(d.attempt)} of round ${text(d.round)}: ${money}`
    case 'PaymentCharged':
      return `${money} charged on attempt ${text(d.attempt)}`
    case 'PaymentAttemptFailed':
      return `Attempt ${text(d.attempt)}: ${text(d.reason)}`
    case 'PaymentSucceeded':
      return `Round ${text(d.round)}, attempt ${text(d.attempt)}`
    case 'PaymentFailed':
      return `After ${text(d.attempts)} attempts: ${text(d.reason)}`
    case 'PaymentRetryRequested':
      return `Round ${text(d.round)}: ${text(d.total)} ${text(d.currency)}`
    case 'OrderCancelled':
    case 'PaymentRefunded':
      return text(d.reason)
    default:
      return ''
  }
}

/** The order as it was at `asOf` (an event's exact `recorded_at`, which includes the event). */
function PastState({ orderId, event, id }: { orderId: string; event: OrderEvent; id: string }) {
  const asOf = event.recorded_at
  const { data, error, loading, reload } = useLoad(
    (signal) => api.orderAsOf(orderId, asOf, signal),
    [orderId, asOf],
  )
  return (
    <div
      className="event-state"
      id={id}
      role="region"
      aria-label={`State at this event: ${TITLES[event.type] ?? event.type}`}
    >
      {loading && data === null && <Loading>Loading the state at this event…</Loading>}
      {error?.status === 404 && <p className="muted">The order did not exist yet at this time.</p>}
      {error && error.status !== 404 && <ErrorAlert error={error} onRetry={reload} />}
      {data && !error && (
        <dl className="event-meta">
          <dt>Status</dt>
          <dd>
            <StatusBadge status={data.status} />
          </dd>
          <dt>Payment attempts</dt>
          <dd>{data.payment_attempts}</dd>
          <dt>Total</dt>
          <dd>
            <Money amount={data.total} currency={data.currency} />
          </dd>
          <dt>Updated</dt>
          <dd>
            <time dateTime={data.updated_at}>{formatTime(data.updated_at)}</time>
          </dd>
        </dl>
      )}
    </div>
  )
}

/** "State at this event": shows (and hides) what the order was right after the event. */
function StateAtEvent({ orderId, event }: { orderId: string; event: OrderEvent }) {
  const [open, setOpen] = useState(false)
  const id = useId()
  return (
    <>
      <button
        type="button"
        className="link-button event-state-toggle"
        aria-expanded={open}
        aria-controls={open ? id : undefined}
        onClick={() => setOpen((was) => !was)}
      >
        {open ? 'Hide the state at this event' : 'State at this event'}
        <span className="sr-only"> ({event.type})</span>
      </button>
      {open && <PastState orderId={orderId} event={event} id={id} />}
    </>
  )
}

/** The order's event timeline; reloaded whenever `revision` changes (a new status). */
export function Timeline({ orderId, revision }: { orderId: string; revision: string }) {
  const { data, error, loading, reload } = useLoad(
    (signal) => api.orderEvents(orderId, signal),
    [orderId, revision],
  )
  return (
    <section className="timeline card" aria-labelledby="timeline-heading" aria-busy={loading}>
      <div className="section-head">
        <h2 id="timeline-heading">Timeline</h2>
        <button type="button" className="button secondary small" onClick={reload} disabled={loading}>
          Refresh
        </button>
      </div>
      {error && <ErrorAlert error={error} onRetry={reload} />}
      {data === null && loading && <Loading>Loading the timeline…</Loading>}
      {data && data.items.length === 0 && <p className="muted">No events yet.</p>}
      {data && data.items.length > 0 && (
        <ol className="events">
          {data.items.map((event) => (
            <li
              key={`${event.stream ?? ''}:${event.stream_version}:${event.type}`}
              className={`event event-${event.type}`}
            >
              <div className="event-head">
                <strong className="event-title">{TITLES[event.type] ?? event.type}</strong>
                <code className="event-type">{event.type}</code>
                <time dateTime={event.recorded_at} className="muted">
                  {formatTime(event.recorded_at)}
                </time>
              </div>
              {summary(event) && <p className="event-summary">{summary(event)}</p>}
              <StateAtEvent orderId={orderId} event={event} />
              <details>
                <summary>
                  Details <span className="sr-only">of {event.type}</span>
                </summary>
                <dl className="event-meta">
                  {event.stream && (
                    <>
                      <dt>Stream</dt>
                      <dd>
                        <code>{event.stream}</code> v{event.stream_version}
                      </dd>
                    </>
                  )}
                  {!event.stream && (
                    <>
                      <dt>Version</dt>
                      <dd>{event.stream_version}</dd>
                    </>
                  )}
                  <dt>Correlation id</dt>
                  <dd>
                    <code>{event.correlation_id ?? '—'}</code>
                  </dd>
                </dl>
                <pre className="event-data">{JSON.stringify(event.data, null, 2)}</pre>
              </details>
            </li>
          ))}
        </ol>
      )}
    </section>
  )
}
