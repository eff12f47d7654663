import { useRef, useState } from 'react'
import { Link, useLocation, useParams } from 'react-router'

import { api } from '../api'
import type { ApiError } from '../api'
import { ErrorAlert, Loading, Money } from '../components/Feedback'
import { PageHeading } from '../components/PageHeading'
import { STATUS_TEXT, StatusBadge } from '../components/StatusBadge'
import { Timeline } from '../components/Timeline'
import { formatTime, shortId } from '../format'
import { asApiError } from '../hooks'
import { FINAL, useOrderPolling } from '../useOrderPolling'
import type { PollingOptions } from '../useOrderPolling'

export function OrderPage() {
  const { id = '' } = useParams()
  const placed = Boolean((useLocation().state as { placed?: boolean } | null)?.placed)
  return <OrderView key={id} orderId={id} placed={placed} />
}

type Action = 'retry' | 'cancel'

export function OrderView({
  orderId,
  placed = false,
  polling: pollingOptions,
}: {
  orderId: string
  placed?: boolean
  polling?: PollingOptions
}) {
  const { order, error, polling, refresh, adopt } = useOrderPolling(orderId, pollingOptions)
  const [busy, setBusy] = useState<Action | null>(null)
  const [confirmCancel, setConfirmCancel] = useState(false)
  const [actionError, setActionError] = useState<ApiError | null>(null)
  const [notice, setNotice] = useState(placed ? 'Your order was placed.' : '')
  const statusRef = useRef<HTMLDivElement>(null)

  const act = async (action: Action) => {
    setBusy(action)
    setActionError(null)
    setNotice('')
    try {
      const next =
        action === 'retry' ? await api.retryPayment(orderId) : await api.cancelOrder(orderId)
      setNotice(action === 'retry' ? 'Payment retry requested.' : 'The order was cancelled.')
      adopt(next)
    } catch (failure) {
      const apiError = asApiError(failure)
      setActionError(apiError)
      // 409: the order moved on (paid, cancelled, already retrying): show where it is now
      if (apiError.status === 409) refresh()
    } finally {
      setBusy(null)
      setConfirmCancel(false)
      statusRef.current?.focus() // the button that had the focus may be gone now
    }
  }

  if (order === null) {
    if (error === null) return <Loading>Loading the order…</Loading>
    return (
      <section>
        <PageHeading title="Order">
          {error.status === 404 ? 'Order not found' : 'Order'}
        </PageHeading>
        {error.status === 404 ? (
          <p>There is no such order in your account.</p>
        ) : (
          <ErrorAlert error={error} onRetry={refresh} />
        )}
        <p>
          <Link to="/orders">Back to my orders</Link>
        </p>
      </section>
    )
  }

  const canCancel = !FINAL.has(order.status)
  const canRetry = order.status === 'PAYMENT_FAILED'

  return (
    <article className="order">
      <p className="breadcrumbs">
        <Link to="/orders">My orders</Link> <span aria-hidden="true">›</span> Order{' '}
        {shortId(order.id)}
      </p>
      <PageHeading title={`Order ${shortId(order.id)}`}>
        Order <code>{shortId(order.id)}</code>
      </PageHeading>
      <p className="muted">
        Placed {formatTime(order.created_at)} · updated {formatTime(order.updated_at)}
      </p>

      <section className="card order-status" aria-labelledby="status-heading">
        <h2 id="status-heading">Status</h2>
        <div
          className="status-line"
          role="status"
          aria-live="polite"
          aria-atomic="true"
          tabIndex={-1}
          ref={statusRef}
          data-testid="order-status"
        >
          <StatusBadge status={order.status} />
          <span>{STATUS_TEXT[order.status]}</span>
        </div>
        {polling && (
          <p className="muted checking">
            <span className="spinner" aria-hidden="true" /> Checking for updates…
          </p>
        )}
        {error && (
          <p className="alert alert-warning">
            Could not refresh the status: {error.message}
            {polling ? ' Trying again…' : ''}
          </p>
        )}
        <p>
          Payment attempts: <strong>{order.payment_attempts}</strong>
        </p>
        {notice && (
          <p className="alert alert-success" role="status">
            {notice}
          </p>
        )}
        <ErrorAlert error={actionError} />
        {(canRetry || canCancel) && (
          <div className="actions">
            {canRetry && (
              <button
                type="button"
                className="button primary"
                disabled={busy !== null}
                onClick={() => act('retry')}
              >
                {busy === 'retry' ? 'Retrying…' : 'Retry payment'}
              </button>
            )}
            {canCancel && !confirmCancel && (
              <button
                type="button"
                className="button secondary"
                disabled={busy !== null}
                onClick={() => setConfirmCancel(true)}
              >
                Cancel order
              </button>
            )}
            {canCancel && confirmCancel && (
              <div className="confirm" role="group" aria-labelledby="confirm-cancel">
                <p id="confirm-cancel">Cancel this order?</p>
                <button
                  type="button"
                  className="button danger"
                  disabled={busy !== null}
                  onClick={() => act('cancel')}
                  autoFocus
                >
                  {busy === 'cancel' ? 'Cancelling…' : 'Yes, cancel the order'}
                </button>
                <button
                  type="button"
                  className="button secondary"
                  disabled={busy !== null}
                  onClick={() => setConfirmCancel(false)}
                >
                  Keep the order
                </button>
              </div>
            )}
          </div>
        )}
      </section>

      <section className="card" aria-labelledby="items-heading">
        <h2 id="items-heading">Items</h2>
        <table className="lines">
          <thead>
            <tr>
              <th scope="col">Product</th>
              <th scope="col" className="num">
                Price
              </th>
              <th scope="col" className="num">
                Qty
              </th>
              <th scope="col" className="num">
                Total
              </th>
            </tr>
          </thead>
          <tbody>
            {order.items.map((line) => (
              <tr key={line.product_id}>
                <td>
                  <Link to={`/products/${line.product_id}`}>{line.name}</Link>
                </td>
                <td className="num">
                  <Money amount={line.unit_price} currency={order.currency} />
                </td>
                <td className="num">{line.quantity}</td>
                <td className="num">
                  <Money amount={line.line_total} currency={order.currency} />
                </td>
              </tr>
            ))}
          </tbody>
          <tfoot>
            <tr>
              <th scope="row" colSpan={3}>
                Total
              </th>
              <td className="num">
                <strong>
                  <Money amount={order.total} currency={order.currency} />
                </strong>
              </td>
            </tr>
          </tfoot>
        </table>
      </section>

      <Timeline orderId={order.id} revision={`${order.status}:${order.updated_at}`} />
    </article>
  )
}
