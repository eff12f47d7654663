import { fireEvent, render, screen, within } from '@testing-library/react'
import { beforeEach, describe, expect, it } from 'vitest'

import { Timeline } from '../components/Timeline'
import type { Order, OrderEvent } from '../types'
import { ORDER_ID, anOrder, error, fakeApi } from './fakeApi'
import type { FakeApi } from './fakeApi'

// Timestamps as the API writes them: microseconds, which a trip through Date would cut.
const PLACED = '2026-01-05T10:00:00.000001Z'
const FAILED = '2026-01-05T10:00:02.654321Z'
const RETRIED = '2026-01-05T10:00:02.654899Z'

function event(type: string, recorded_at: string, version: number): OrderEvent {
  return {
    type,
    stream: `order-${ORDER_ID}`,
    stream_version: version,
    recorded_at,
    data: {},
    correlation_id: 'corr-1',
  }
}

const EVENTS: OrderEvent[] = [
  event('OrderPlaced', PLACED, 1),
  event('PaymentFailed', FAILED, 2),
  event('PaymentRetryRequested', RETRIED, 3),
]

/** The order service's time travel: the state after the last event at or before `as_of`. */
const STATES: [string, Order][] = [
  [PLACED, anOrder('PENDING_PAYMENT', { payment_attempts: 0, updated_at: PLACED })],
  [FAILED, anOrder('PAYMENT_FAILED', { payment_attempts: 3, updated_at: FAILED })],
  [RETRIED, anOrder('PENDING_PAYMENT', { payment_attempts: 3, updated_at: RETRIED })],
]

const AS_OF = /^\/api\/orders\/[^/?]+\?as_of=([^&]+)$/

function serve(fake: FakeApi) {
  fake.on('GET', `/api/orders/${ORDER_ID}/events`, () => ({ body: { items: EVENTS } }))
  fake.on('GET', AS_OF, (_call, match) => {
    const asOf = decodeURIComponent(match[1])
    // compared as text: equal-length UTC timestamps sort like the times they name
    const past = STATES.filter(([at]) => at <= asOf).pop()
    return past ? { body: past[1] } : error(404, 'not_found', 'no such order')
  })
}

function entry(type: string): HTMLElement {
  const item = document.querySelector<HTMLElement>(`.event-${type}`)
  if (item === null) throw new Error(`no timeline entry ${type}`)
  return item
}

describe('the state at an event', () => {
  let fake: FakeApi
  beforeEach(() => {
    fake = fakeApi()
    serve(fake)
  })

  it('fetches the order as of the exact time of the event and shows it', async () => {
    render(<Timeline orderId={ORDER_ID} revision="r1" />)
    await screen.findByText('PaymentFailed')
    expect(fake.callsTo('GET', AS_OF)).toHaveLength(0) // nothing is fetched before it is asked

    const failed = entry('PaymentFailed')
    fireEvent.click(within(failed).getByRole('button', { name: /State at this event/ }))
    const state = await within(failed).findByRole('region', { name: /State at this event/ })
    expect(await within(state).findByText('PAYMENT_FAILED')).toBeTruthy()
    expect(state.textContent).toContain('Payment attempts3')
    expect(state.textContent).toContain('25.80 EUR')

    const asked = fake.callsTo('GET', AS_OF)
    expect(asked.map((c) => c.path)).toEqual([
      `/api/orders/${ORDER_ID}?as_of=${encodeURIComponent(FAILED)}`,
    ])
    expect(asked[0].path).toContain('as_of=2026-01-05T10%3A00%3A02.654321Z')

    // the next event, half a millisecond later, is another state
    const retried = entry('PaymentRetryRequested')
    fireEvent.click(within(retried).getByRole('button', { name: /State at this event/ }))
    const later = await within(retried).findByRole('region', { name: /State at this event/ })
    expect(await within(later).findByText('PENDING_PAYMENT')).toBeTruthy()
    expect(within(state).getByText('PAYMENT_FAILED')).toBeTruthy() // each entry keeps its own

    const hide = within(failed).getByRole('button', { name: /Hide the state at this event/ })
    expect(hide.getAttribute('aria-expanded')).toBe('true')
    fireEvent.click(hide)
    expect(within(failed).queryByRole('region')).toBeNull()
  })

  it('says when the order did not exist yet, and shows other errors', async () => {
    fake.on('GET', AS_OF, (_call, match) =>
      decodeURIComponent(match[1]) === PLACED
        ? error(404, 'not_found', 'no such order')
        : error(422, 'validation_error', 'the query string is invalid', {
            as_of: ['an ISO 8601 time with a timezone is required'],
          }),
    )
    render(<Timeline orderId={ORDER_ID} revision="r1" />)
    await screen.findByText('OrderPlaced')
    fireEvent.click(within(entry('OrderPlaced')).getByRole('button', { name: /State at this/ }))
    expect(await screen.findByText('The order did not exist yet at this time.')).toBeTruthy()
    fireEvent.click(within(entry('PaymentFailed')).getByRole('button', { name: /State at this/ }))
    const alert = await within(entry('PaymentFailed')).findByRole('alert')
    expect(alert.textContent).toContain('an ISO 8601 time with a timezone is required')
  })
})
