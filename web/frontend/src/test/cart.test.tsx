import { fireEvent, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { beforeEach, describe, expect, it } from 'vitest'

import type { Cart, CartLine } from '../types'
import { ORDER_ID, anOrder, error, fakeApi, renderApp } from './fakeApi'
import type { FakeApi } from './fakeApi'

// Prices the fake "server" knows; totals are computed here in cents, as a server would,
// and sent as strings: the app itself only ever shows them.
const PRICES: Record<string, [string, number]> = {
  'p-mug': ['Ceramic Coffee Mug', 1290],
  'p-tea': ['Japanese Sencha Tea', 1680],
}

function money(cents: number): string {
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`
}

/** A stateful fake cart service. */
function cartServer(fake: FakeApi, initial: Record<string, number>, gone = new Set<string>()) {
  const quantities = new Map(Object.entries(initial))
  let version = 1
  const cart = (): Cart => {
    const items: CartLine[] = [...quantities].map(([id, quantity]) => ({
      product_id: id,
      sku: id === 'p-mug' ? 'MUG-01' : null, // the tea's line predates SKUs on cart lines
      name: PRICES[id][0],
      unit_price: money(PRICES[id][1]),
      quantity,
      line_total: money(PRICES[id][1] * quantity),
      available: !gone.has(id),
    }))
    const total = [...quantities]
      .filter(([id]) => !gone.has(id))
      .reduce((sum, [id, q]) => sum + PRICES[id][1] * q, 0)
    return { items, total: money(total), currency: items.length ? 'EUR' : null, version }
  }
  fake
    .on('GET', '/api/cart', () => ({ body: cart() }))
    .on('PUT', /^\/api\/cart\/items\/([^/]+)$/, (call, match) => {
      const quantity = (call.body as { quantity: number }).quantity
      if (quantity > 99) {
        return error(422, 'validation_error', 'the request body is invalid', {
          quantity: ['must be between 1 and 99'],
        })
      }
      quantities.set(match[1], quantity)
      version += 1
      return { body: cart() }
    })
    .on('DELETE', /^\/api\/cart\/items\/([^/]+)$/, (_call, match) => {
      quantities.delete(match[1])
      version += 1
      return { body: cart() }
    })
    .on('DELETE', '/api/cart', () => {
      quantities.clear()
      version += 1
      return { status: 204 }
    })
  return { quantities }
}

function line(name: string): HTMLElement {
  const item = screen.getByRole('link', { name }).closest('li')
  if (item === null) throw new Error(`no cart line for ${name}`)
  return item
}

describe('cart', () => {
  let fake: FakeApi
  beforeEach(() => {
    fake = fakeApi()
  })

  it('shows the lines and total as the API gives them', async () => {
    cartServer(fake, { 'p-mug': 2, 'p-tea': 1 })
    renderApp('/cart')
    expect(await screen.findByRole('heading', { name: 'Your cart' })).toBeTruthy()
    expect(within(line('Ceramic Coffee Mug')).getByText('25.80 EUR')).toBeTruthy()
    expect(within(line('Ceramic Coffee Mug')).getByText('SKU MUG-01')).toBeTruthy()
    expect(within(line('Japanese Sencha Tea')).queryByText(/SKU/)).toBeNull()
    expect(screen.getByText('42.60 EUR')).toBeTruthy()
    expect(fake.calls.find((c) => c.path === '/api/cart')?.headers.Authorization).toBe(
      'Bearer test-token',
    )
  })

  it('steps a quantity up and down', async () => {
    const server = cartServer(fake, { 'p-mug': 2 })
    renderApp('/cart')
    fireEvent.click(await screen.findByRole('button', { name: 'Increase quantity of Ceramic Coffee Mug' }))
    await waitFor(() => expect(screen.getByText('38.70 EUR', { selector: '.line-total *' })).toBeTruthy())
    expect(fake.callsTo('PUT', '/api/cart/items/p-mug').map((c) => c.body)).toEqual([{ quantity: 3 }])
    fireEvent.click(screen.getByRole('button', { name: 'Decrease quantity of Ceramic Coffee Mug' }))
    await waitFor(() => expect(server.quantities.get('p-mug')).toBe(2))
    await waitFor(() =>
      expect(
        (screen.getByLabelText('Quantity of Ceramic Coffee Mug') as HTMLInputElement).value,
      ).toBe('2'),
    )
  })

  it('cannot step below 1', async () => {
    cartServer(fake, { 'p-mug': 1 })
    renderApp('/cart')
    const minus = await screen.findByRole('button', {
      name: 'Decrease quantity of Ceramic Coffee Mug',
    })
    expect((minus as HTMLButtonElement).disabled).toBe(true)
  })

  it('sets a typed quantity on Enter', async () => {
    const user = userEvent.setup()
    const server = cartServer(fake, { 'p-mug': 2 })
    renderApp('/cart')
    const input = await screen.findByLabelText('Quantity of Ceramic Coffee Mug')
    await user.clear(input)
    await user.type(input, '7{Enter}')
    await waitFor(() => expect(server.quantities.get('p-mug')).toBe(7))
    expect(fake.callsTo('PUT', '/api/cart/items/p-mug').map((c) => c.body)).toEqual([{ quantity: 7 }])
    expect(await screen.findByText('90.30 EUR', { selector: '.line-total *' })).toBeTruthy()
  })

  it('refuses a quantity outside 1..99 without asking the API', async () => {
    const user = userEvent.setup()
    cartServer(fake, { 'p-mug': 2 })
    renderApp('/cart')
    const input = await screen.findByLabelText('Quantity of Ceramic Coffee Mug')
    await user.clear(input)
    await user.type(input, '100{Enter}')
    expect(screen.getByText('Choose 1 to 99.')).toBeTruthy()
    expect(input.getAttribute('aria-invalid')).toBe('true')
    await user.clear(input)
    await user.type(input, '0')
    await user.tab()
    expect(fake.callsTo('PUT', '/api/cart/items/p-mug')).toHaveLength(0)
  })

  it('shows the API’s validation details', async () => {
    cartServer(fake, { 'p-mug': 99 })
    renderApp('/cart')
    const plus = await screen.findByRole('button', {
      name: 'Increase quantity of Ceramic Coffee Mug',
    })
    expect((plus as HTMLButtonElement).disabled).toBe(true) // 99 is the most
    fake.on('PUT', '/api/cart/items/p-mug', () =>
      error(422, 'validation_error', 'the request body is invalid', {
        quantity: ['must be between 1 and 99'],
      }),
    )
    fireEvent.click(screen.getByRole('button', { name: 'Decrease quantity of Ceramic Coffee Mug' }))
    const alert = await screen.findByRole('alert')
    expect(alert.textContent).toContain('the request body is invalid')
    expect(alert.textContent).toContain('quantity: must be between 1 and 99')
  })

  it('removes a line and clears the cart', async () => {
    const server = cartServer(fake, { 'p-mug': 2, 'p-tea': 1 })
    renderApp('/cart')
    fireEvent.click(await screen.findByRole('button', { name: 'Remove Japanese Sencha Tea' }))
    await waitFor(() => expect(screen.queryByRole('link', { name: 'Japanese Sencha Tea' })).toBeNull())
    expect(server.quantities.has('p-tea')).toBe(false)
    expect(screen.getByText('25.80 EUR', { selector: '.cart-total *' })).toBeTruthy()

    fireEvent.click(screen.getByRole('button', { name: 'Clear cart' }))
    expect(await screen.findByText('Your cart is empty.')).toBeTruthy()
    expect(fake.callsTo('DELETE', '/api/cart')).toHaveLength(1)
  })

  it('checks out once per attempt: a re-submit sends the same Idempotency-Key', async () => {
    cartServer(fake, { 'p-mug': 2 })
    let posts = 0
    fake.on('POST', '/api/orders', () => {
      posts += 1
      // the first answer is lost on the way back (the order may exist already)
      return posts === 1 ? { networkError: true } : { status: 201, body: anOrder('PENDING_PAYMENT') }
    })
    fake.on('GET', `/api/orders/${ORDER_ID}`, () => ({ body: anOrder('PAID') }))
    fake.on('GET', `/api/orders/${ORDER_ID}/events`, () => ({ body: { items: [] } }))
    renderApp('/cart')
    const checkout = await screen.findByRole('button', { name: 'Check out' })
    fireEvent.click(checkout)
    fireEvent.click(checkout) // a double click
    expect((await screen.findByRole('alert')).textContent).toContain('Cannot reach the shop')
    fireEvent.click(screen.getByRole('button', { name: 'Check out' }))
    expect(await screen.findByText('Your order was placed.')).toBeTruthy()

    const keys = fake.callsTo('POST', '/api/orders').map((c) => c.headers['Idempotency-Key'])
    expect(keys).toHaveLength(2)
    expect(keys[0]).toMatch(/^[0-9a-f]{32}$/)
    expect(keys[1]).toBe(keys[0])
    expect(await screen.findByText('PAID', { selector: '[data-status]' })).toBeTruthy()
  })

  it('a changed cart is a new checkout attempt with a new key', async () => {
    cartServer(fake, { 'p-mug': 2 })
    fake.on('POST', '/api/orders', () => error(503, 'service_unavailable', 'cart is down'))
    renderApp('/cart')
    fireEvent.click(await screen.findByRole('button', { name: 'Check out' }))
    await screen.findByText('cart is down')
    fireEvent.click(screen.getByRole('button', { name: 'Increase quantity of Ceramic Coffee Mug' }))
    await screen.findByText('38.70 EUR', { selector: '.line-total *' })
    fireEvent.click(screen.getByRole('button', { name: 'Check out' }))
    await waitFor(() => expect(fake.callsTo('POST', '/api/orders')).toHaveLength(2))
    const [first, second] = fake.callsTo('POST', '/api/orders').map((c) => c.headers['Idempotency-Key'])
    expect(second).not.toBe(first)
  })

  it('marks a product no longer sold and reloads the cart when checkout refuses it', async () => {
    const gone = new Set<string>()
    cartServer(fake, { 'p-mug': 2, 'p-tea': 1 }, gone)
    fake.on('POST', '/api/orders', () => {
      gone.add('p-tea') // discontinued while the cart page was open
      return error(409, 'product_unavailable', 'no longer sold: Japanese Sencha Tea', {
        products: [{ product_id: 'p-tea', name: 'Japanese Sencha Tea' }],
      })
    })
    renderApp('/cart')
    fireEvent.click(await screen.findByRole('button', { name: 'Check out' }))
    expect((await screen.findByRole('alert')).textContent).toContain('no longer sold')
    expect(await within(line('Japanese Sencha Tea')).findByText(/No longer available/)).toBeTruthy()
    expect(within(line('Ceramic Coffee Mug')).queryByText(/No longer available/)).toBeNull()
    expect(screen.getByText('25.80 EUR', { selector: '.cart-total *' })).toBeTruthy()
  })

  it('sends a logged-out visitor to the login page', async () => {
    renderApp('/cart', { token: null })
    expect(await screen.findByRole('heading', { name: 'Log in' })).toBeTruthy()
    expect(fake.callsTo('GET', '/api/cart')).toHaveLength(0)
  })
})
