import type { OrderStatus } from '../types'

export const STATUS_TEXT: Record<OrderStatus, string> = {
  PENDING_PAYMENT: 'Waiting for the payment.',
  PAID: 'Paid. Thank you for your order!',
  PAYMENT_FAILED: 'The payment failed. You can retry the payment or cancel the order.',
  CANCELLED: 'This order was cancelled.',
}

export function StatusBadge({ status }: { status: OrderStatus }) {
  return (
    <span className={`badge badge-${status.toLowerCase().replace(/_/g, '-')}`} data-status={status}>
      {status}
    </span>
  )
}
