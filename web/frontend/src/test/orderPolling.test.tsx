import { act, fireEvent, screen, within } from '@testing-library/react'
import { beforeEach, describe, expect, it, vi } from 'vitest'

import { OrderView } from '../pages/OrderPage'
import type { OrderStatus } from '../types'
import { ORDER_ID, anOrder, error, fakeApi, inRouter } from './fakeApi'
import type { FakeApi } from './fakeApi'

const ORDER_PATH = `/api/orders/${ORDER_ID}`
const EVENTS = /^\/api\/orders\/[^/]+\/events$/

/** Let the fake clock run `ms`, with the promises the timers start settled in between. */
async function elapse(ms: number) {
  await act(async () => {
    await vi.advanceTimersByTimeAsync(ms)
  })
}

/** GET /api/orders/{id} answers each status of `statuses` in turn, then the last one. */
function serveStatuses(fake: FakeApi, statuses: OrderStatus[]) {
  let served = 0
  fake.on('GET', ORDER_PATH, () => {
    const status = statuses[Math.min(served, statuses.length - 1)]
    served += 1
    return { body: anOrder(status, { updated_at: `2026-01-05T10:00:0${served % 10}+00:00` }) }
  })
  fake.on('GET', EVENTS, () => ({ body: { items: [] } }))
}

function gaps(fake: FakeApi): number[] {
  const times = fake.callsTo('GET', ORDER_PATH).map((c) => c.at)
  return times.slice(1).map((t, i) => t - times[i])
}

function statusRegion(): HTMLElement {
  return screen.getByTestId('order-status')
}

describe('live order status', () => {
  let fake: FakeApi
  beforeEach(() => {
    vi.useFakeTimers()
    fake = fakeApi()
  })

  it('polls with a doubling backoff capped at 4 s and stops at PAID', async () => {
    serveStatuses(fake, [...Array(7).fill('PENDING_PAYMENT'), 'PAID'])
    inRouter(<OrderView orderId={ORDER_ID} />)
    await elapse(0)
    expect(within(statusRegion()).getByText('PENDING_PAYMENT')).toBeTruthy()
    expect(statusRegion().getAttribute('aria-live')).toBe('polite')

    await elapse(20_000)
    expect(gaps(fake)).toEqual([250, 500, 1000, 2000, 4000, 4000, 4000])
    expect(within(statusRegion()).getByText('PAID')).toBeTruthy()
    expect(screen.queryByText(/Checking for updates/)).toBeNull()

    await elapse(60_000) // settled: not one request more
    expect(fake.callsTo('GET', ORDER_PATH)).toHaveLength(8)
  })

  it('shows every status it sees on the way', async () => {
    serveStatuses(fake, ['PENDING_PAYMENT', 'PENDING_PAYMENT', 'PAYMENT_FAILED'])
    inRouter(<OrderView orderId={ORDER_ID} />)
    await elapse(0)
    expect(statusRegion().textContent).toContain('PENDING_PAYMENT')
    await elapse(250)
    expect(statusRegion().textContent).toContain('PENDING_PAYMENT')
    await elapse(500)
    expect(statusRegion().textContent).toContain('PAYMENT_FAILED')
    await elapse(30_000) // PAYMENT_FAILED waits for the customer: no more polling
    expect(fake.callsTo('GET', ORDER_PATH)).toHaveLength(3)
  })

  it('stops polling when the page goes away', async () => {
    serveStatuses(fake, ['PENDING_PAYMENT'])
    const view = inRouter(<OrderView orderId={ORDER_ID} />)
    await elapse(800) // requests at 0, 250 and 750
    expect(fake.callsTo('GET', ORDER_PATH)).toHaveLength(3)
    view.unmount()
    await elapse(60_000)
    expect(fake.callsTo('GET', ORDER_PATH)).toHaveLength(3)
  })

  it('keeps polling through a failed request and says so', async () => {
    let n = 0
    fake.on('GET', ORDER_PATH, () => {
      n += 1
      if (n === 2) return error(503, 'service_unavailable', 'order is restarting')
      return { body: anOrder(n >= 3 ? 'PAID' : 'PENDING_PAYMENT') }
    })
    fake.on('GET', EVENTS, () => ({ body: { items: [] } }))
    inRouter(<OrderView orderId={ORDER_ID} />)
    await elapse(250)
    expect(screen.getByText(/Could not refresh the status: order is restarting/)).toBeTruthy()
    await elapse(500)
    expect(statusRegion().textContent).toContain('PAID')
    expect(screen.queryByText(/Could not refresh/)).toBeNull()
  })

  it('gives up on an unknown order', async () => {
    fake.on('GET', ORDER_PATH, () => error(404, 'not_found', 'no such order'))
    inRouter(<OrderView orderId={ORDER_ID} />)
    await elapse(10_000)
    expect(screen.getByRole('heading', { name: 'Order not found' })).toBeTruthy()
    expect(fake.callsTo('GET', ORDER_PATH)).toHaveLength(1)
  })
})

describe('retry payment', () => {
  let fake: FakeApi
  beforeEach(() => {
    vi.useFakeTimers()
    fake = fakeApi()
  })

  it.each<OrderStatus>(['PENDING_PAYMENT', 'PAID', 'CANCELLED'])(
    'is not offered when the order is %s',
    async (status) => {
      serveStatuses(fake, [status])
      inRouter(<OrderView orderId={ORDER_ID} />)
      await elapse(0)
      expect(statusRegion().textContent).toContain(status)
      expect(screen.queryByRole('button', { name: 'Retry payment' })).toBeNull()
    },
  )

  it('posts the retry and resumes polling until PAID', async () => {
    serveStatuses(fake, ['PAYMENT_FAILED'])
    fake.on('POST', `${ORDER_PATH}/retry-payment`, () => {
      serveStatuses(fake, ['PENDING_PAYMENT', 'PENDING_PAYMENT', 'PAID'])
      return { status: 202, body: anOrder('PENDING_PAYMENT', { payment_attempts: 3 }) }
    })
    inRouter(<OrderView orderId={ORDER_ID} />)
    await elapse(10_000)
    expect(fake.callsTo('GET', ORDER_PATH)).toHaveLength(1) // settled at PAYMENT_FAILED
    expect(screen.getByRole('button', { name: 'Cancel order' })).toBeTruthy()

    fireEvent.click(screen.getByRole('button', { name: 'Retry payment' }))
    await elapse(0)
    expect(fake.callsTo('POST', `${ORDER_PATH}/retry-payment`)).toHaveLength(1)
    expect(statusRegion().textContent).toContain('PENDING_PAYMENT')
    expect(screen.queryByRole('button', { name: 'Retry payment' })).toBeNull()
    expect(screen.getByText('Payment retry requested.')).toBeTruthy()
    expect(document.activeElement).toBe(statusRegion()) // the focus had been on the button

    const before = fake.callsTo('GET', ORDER_PATH).length
    await elapse(250 + 500 + 1000)
    const after = fake.callsTo('GET', ORDER_PATH)
    expect(after.length - before).toBe(3)
    expect(gaps(fake).slice(-2)).toEqual([500, 1000])
    expect(statusRegion().textContent).toContain('PAID')
    expect(screen.queryByRole('button', { name: 'Cancel order' })).toBeNull()
    await elapse(30_000)
    expect(fake.callsTo('GET', ORDER_PATH)).toHaveLength(after.length)
  })

  it('shows the 409 message and the status the order has now', async () => {
    serveStatuses(fake, ['PAYMENT_FAILED'])
    fake.on('POST', `${ORDER_PATH}/retry-payment`, () => {
      serveStatuses(fake, ['PAID']) // someone else's retry went through meanwhile
      return error(409, 'illegal_transition', 'cannot retry the payment of a PAID order', {
        status: 'PAID',
      })
    })
    inRouter(<OrderView orderId={ORDER_ID} />)
    await elapse(0)
    fireEvent.click(screen.getByRole('button', { name: 'Retry payment' }))
    await elapse(0)
    expect(screen.getByRole('alert').textContent).toContain(
      'cannot retry the payment of a PAID order',
    )
    expect(statusRegion().textContent).toContain('PAID')
    expect(fake.callsTo('GET', ORDER_PATH)).toHaveLength(2) // refreshed once, then settled
    expect(screen.queryByRole('button', { name: 'Retry payment' })).toBeNull()
  })
})

describe('cancel', () => {
  it('asks first, then cancels and stops polling', async () => {
    vi.useFakeTimers()
    const fake = fakeApi()
    serveStatuses(fake, ['PENDING_PAYMENT'])
    fake.on('POST', `${ORDER_PATH}/cancel`, () => ({ body: anOrder('CANCELLED') }))
    inRouter(<OrderView orderId={ORDER_ID} />)
    await elapse(0)
    fireEvent.click(screen.getByRole('button', { name: 'Cancel order' }))
    expect(fake.callsTo('POST', `${ORDER_PATH}/cancel`)).toHaveLength(0)
    fireEvent.click(screen.getByRole('button', { name: 'Yes, cancel the order' }))
    await elapse(0)
    expect(fake.callsTo('POST', `${ORDER_PATH}/cancel`)).toHaveLength(1)
    expect(statusRegion().textContent).toContain('CANCELLED')
    const polls = fake.callsTo('GET', ORDER_PATH).length
    await elapse(30_000)
    expect(fake.callsTo('GET', ORDER_PATH)).toHaveLength(polls)
    expect(screen.queryByRole('button', { name: /Cancel/ })).toBeNull()
  })
})
