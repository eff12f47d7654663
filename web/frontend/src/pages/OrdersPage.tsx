import { Link } from 'react-router'

import { api } from '../api'
import { ErrorAlert, Loading, Money } from '../components/Feedback'
import { PageHeading } from '../components/PageHeading'
import { StatusBadge } from '../components/StatusBadge'
import { formatTime, shortId } from '../format'
import { useLoad } from '../hooks'

export function OrdersPage() {
  const { data, error, loading, reload } = useLoad((signal) => api.orders(signal), [])
  return (
    <section>
      <PageHeading title="My orders">My orders</PageHeading>
      {loading && <Loading>Loading your orders…</Loading>}
      {error && <ErrorAlert error={error} onRetry={reload} />}
      {data && data.items.length === 0 && (
        <div className="empty">
          <p>You have no orders yet.</p>
          <p>
            <Link to="/" className="button">
              Browse the catalog
            </Link>
          </p>
        </div>
      )}
      {data && data.items.length > 0 && (
        <ul className="order-list">
          {data.items.map((order) => (
            <li key={order.id} className="card order-row">
              <Link to={`/orders/${order.id}`} className="order-link">
                Order <code>{shortId(order.id)}</code>
              </Link>
              <span className="muted">{formatTime(order.created_at)}</span>
              <span>
                {order.items.reduce((n, line) => n + line.quantity, 0)} items ·{' '}
                <Money amount={order.total} currency={order.currency} />
              </span>
              <StatusBadge status={order.status} />
            </li>
          ))}
        </ul>
      )}
    </section>
  )
}
