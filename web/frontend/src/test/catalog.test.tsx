import { fireEvent, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { beforeEach, describe, expect, it } from 'vitest'

import { PAGE_SIZE } from '../pages/CatalogPage'
import type { Product } from '../types'
import { error, fakeApi, renderApp } from './fakeApi'
import type { FakeApi } from './fakeApi'

function product(n: number, changes: Partial<Product> = {}): Product {
  return {
    id: `p-${n}`,
    sku: `SKU-${n}`,
    name: `Product ${String(n).padStart(2, '0')}`,
    description: `Description of product ${n}`,
    price: `${n}.50`,
    currency: 'EUR',
    image_url: `/api/products/p-${n}/image.svg`,
    active: true,
    ...changes,
  }
}

const ALL = Array.from({ length: 30 }, (_, i) => product(i + 1))

function catalogServer(fake: FakeApi) {
  fake.on('GET', /^\/api\/products\?/, (call) => {
    const query = new URL(call.path, 'http://x').searchParams
    const q = (query.get('q') ?? '').toLowerCase()
    const hits = ALL.filter((p) => p.name.toLowerCase().includes(q))
    const offset = Number(query.get('offset'))
    return {
      body: { items: hits.slice(offset, offset + Number(query.get('limit'))), total: hits.length },
    }
  })
  fake.on('GET', /^\/api\/products\/(p-\d+)$/, (_call, match) => {
    const found = ALL.find((p) => p.id === match[1])
    return found ? { body: found } : error(404, 'not_found', 'no such product')
  })
}

describe('catalog', () => {
  let fake: FakeApi
  beforeEach(() => {
    fake = fakeApi()
    catalogServer(fake)
  })

  it('pages through the products', async () => {
    renderApp('/', { token: null })
    expect(await screen.findByText('30 products')).toBeTruthy()
    expect(screen.getAllByRole('listitem').filter((li) => li.classList.contains('product-card')))
      .toHaveLength(PAGE_SIZE)
    expect(screen.getByText('Page 1 of 3')).toBeTruthy()
    fireEvent.click(screen.getByRole('button', { name: 'Next' }))
    expect(await screen.findByRole('link', { name: 'Product 13' })).toBeTruthy()
    expect(fake.calls.at(-1)?.path).toBe(`/api/products?limit=${PAGE_SIZE}&offset=${PAGE_SIZE}`)
    expect(screen.getByText('Page 2 of 3')).toBeTruthy()
    fireEvent.click(screen.getByRole('button', { name: 'Previous' }))
    expect(await screen.findByRole('link', { name: 'Product 01' })).toBeTruthy()
  })

  it('searches', async () => {
    const user = userEvent.setup()
    renderApp('/', { token: null })
    await screen.findByText('30 products')
    await user.type(screen.getByLabelText('Search products'), 'Product 2{Enter}')
    expect(await screen.findByText('10 products matching “Product 2”')).toBeTruthy()
    expect(fake.calls.at(-1)?.path).toBe('/api/products?limit=12&offset=0&q=Product+2')
    expect(screen.queryByRole('navigation', { name: 'Pages' })).toBeNull()
    await user.clear(screen.getByLabelText('Search products'))
    await user.type(screen.getByLabelText('Search products'), 'nothing like it{Enter}')
    expect(await screen.findByText('No products match “nothing like it”.')).toBeTruthy()
  })

  it('shows an error with a way to try again', async () => {
    let failing = true
    fake.on('GET', /^\/api\/products\?/, () =>
      failing ? error(502, 'bad_gateway', 'product is not answering') : { body: { items: [product(1)], total: 1 } },
    )
    renderApp('/', { token: null })
    expect((await screen.findByRole('alert')).textContent).toContain('product is not answering')
    failing = false
    fireEvent.click(screen.getByRole('button', { name: 'Try again' }))
    expect(await screen.findByText('1 product')).toBeTruthy()
  })

  it('adds to the cart from the catalog when logged in', async () => {
    fake.on('POST', '/api/cart/items', (call) => ({
      body: {
        items: [{ product_id: 'p-1', name: 'Product 01', unit_price: '1.50', quantity: 1, line_total: '1.50', available: true }],
        total: '1.50',
        currency: 'EUR',
        version: 1,
        sent: call.body,
      },
    }))
    renderApp('/')
    fireEvent.click(await screen.findByRole('button', { name: 'Add Product 01 to cart' }))
    const card = screen.getByRole('link', { name: 'Product 01' }).closest('li') as HTMLElement
    expect(await within(card).findByText(/Added\. 1 in your/)).toBeTruthy()
    expect(fake.callsTo('POST', '/api/cart/items')[0].body).toEqual({ product_id: 'p-1', quantity: 1 })
  })

  it('asks guests to log in instead', async () => {
    renderApp('/', { token: null })
    await screen.findByText('30 products')
    expect(screen.queryByRole('button', { name: /to cart/ })).toBeNull()
    expect(screen.getAllByRole('link', { name: 'Log in' }).length).toBeGreaterThan(1)
  })
})

describe('product page', () => {
  it('shows the product and adds the chosen quantity', async () => {
    const fake = fakeApi()
    catalogServer(fake)
    fake.on('POST', '/api/cart/items', () => ({
      body: { items: [{ product_id: 'p-3', name: 'Product 03', unit_price: '3.50', quantity: 4, line_total: '14.00', available: true }], total: '14.00', currency: 'EUR', version: 2 },
    }))
    renderApp('/products/p-3')
    expect(await screen.findByRole('heading', { name: 'Product 03' })).toBeTruthy()
    expect(screen.getByText('3.50 EUR')).toBeTruthy()
    const img = screen.getByRole('img', { name: 'Product 03' }) as HTMLImageElement
    expect(img.getAttribute('src')).toBe('/api/products/p-3/image.svg')
    const quantity = screen.getByLabelText('Quantity')
    fireEvent.change(quantity, { target: { value: '120' } })
    expect(screen.getByText('Choose a whole number from 1 to 99.')).toBeTruthy()
    expect(screen.queryByRole('button', { name: 'Add to cart' })).toBeNull()
    fireEvent.change(quantity, { target: { value: '4' } })
    fireEvent.click(screen.getByRole('button', { name: 'Add to cart' }))
    await waitFor(() =>
      expect(fake.callsTo('POST', '/api/cart/items').map((c) => c.body)).toEqual([
        { product_id: 'p-3', quantity: 4 },
      ]),
    )
    expect(await screen.findByText(/Added\. 4 in your/)).toBeTruthy()
  })

  it('says when a product does not exist', async () => {
    const fake = fakeApi()
    catalogServer(fake)
    renderApp('/products/p-999', { token: null })
    expect(await screen.findByRole('heading', { name: 'Product not found' })).toBeTruthy()
  })
})
