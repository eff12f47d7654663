import { screen } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { beforeEach, describe, expect, it } from 'vitest'

import { api, getRefreshToken, getToken, startSession } from '../api'
import { error, fakeApi, renderApp } from './fakeApi'
import type { Call, FakeApi } from './fakeApi'

const CART = { items: [], total: '0.00', currency: null, version: 1 }

function pair(access: string, refresh: string, expiresIn = 900) {
  return {
    access_token: access,
    token_type: 'Bearer',
    expires_in: expiresIn,
    refresh_token: refresh,
    refresh_expires_in: 604800,
  }
}

/** The cart answers only the current access token; the API refreshes `r1` into `new`. */
function shop(fake: FakeApi, current = 'new') {
  fake.on('GET', '/api/cart', (call: Call) =>
    call.headers.Authorization === `Bearer ${current}`
      ? { body: CART }
      : error(401, 'token_expired', 'the token has expired'),
  )
  fake.on('POST', '/api/auth/refresh', (call: Call) =>
    (call.body as { refresh_token: string }).refresh_token === 'r1'
      ? { body: pair('new', 'r2') }
      : error(401, 'refresh_token_reused', 'the refresh token was already used'),
  )
}

describe('silent refresh', () => {
  let fake: FakeApi
  beforeEach(() => {
    fake = fakeApi()
  })

  it('refreshes once when the API refuses the token, and retries', async () => {
    shop(fake)
    startSession(pair('old', 'r1'))
    await expect(api.cart()).resolves.toEqual(CART)
    expect(fake.callsTo('POST', '/api/auth/refresh').map((c) => c.body)).toEqual([
      { refresh_token: 'r1' },
    ])
    expect(fake.callsTo('GET', '/api/cart').map((c) => c.headers.Authorization)).toEqual([
      'Bearer old',
      'Bearer new',
    ])
    expect([getToken(), getRefreshToken()]).toEqual(['new', 'r2'])
    expect(window.sessionStorage.getItem('microshop.refresh')).toBe('r2')
  })

  it('shares one refresh among requests refused together', async () => {
    shop(fake)
    startSession(pair('old', 'r1'))
    await expect(Promise.all([api.cart(), api.cart(), api.cart()])).resolves.toEqual([
      CART,
      CART,
      CART,
    ])
    expect(fake.callsTo('POST', '/api/auth/refresh')).toHaveLength(1) // a second would revoke
  })

  it('refreshes before sending when the access token is about to expire', async () => {
    shop(fake)
    startSession(pair('old', 'r1', 20)) // within the 30 s it refreshes ahead
    await expect(api.cart()).resolves.toEqual(CART)
    expect(fake.calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      'POST /api/auth/refresh',
      'GET /api/cart',
    ])
  })

  it('keeps the session when the shop cannot refresh it right now', async () => {
    fake.on('GET', '/api/cart', () => error(401, 'token_expired', 'the token has expired'))
    fake.on('POST', '/api/auth/refresh', () => ({ status: 503 }))
    startSession(pair('old', 'r1'))
    await expect(api.cart()).rejects.toMatchObject({ status: 503 })
    expect([getToken(), getRefreshToken()]).toEqual(['old', 'r1'])
  })

  it('logs out cleanly when the refresh is refused', async () => {
    fake.on('GET', '/api/orders', () => error(401, 'token_revoked', 'this login has ended'))
    fake.on('POST', '/api/auth/refresh', () =>
      error(401, 'refresh_token_reused', 'the refresh token was already used'),
    )
    startSession(pair('old', 'stolen-and-used'))
    renderApp('/orders', { token: null })
    expect(await screen.findByRole('heading', { name: 'Log in' })).toBeTruthy()
    expect(screen.getByText('Your session has ended. Please log in again.')).toBeTruthy()
    expect([getToken(), getRefreshToken()]).toEqual([null, null])
    expect(window.sessionStorage.getItem('microshop.refresh')).toBeNull()
    expect(fake.callsTo('POST', '/api/auth/refresh')).toHaveLength(1)
  })

  it('logging out revokes the login at the API', async () => {
    fake.on('GET', /^\/api\/products/, () => ({ body: { items: [], total: 0 } }))
    fake.on('POST', '/api/auth/logout', () => ({ status: 204 }))
    startSession(pair('a-token', 'its-refresh'))
    renderApp('/', { token: null })
    const user = userEvent.setup()
    await user.click(await screen.findByRole('button', { name: 'Log out' }))
    expect(getToken()).toBeNull()
    expect(window.sessionStorage.getItem('microshop.refresh')).toBeNull()
    const [logout] = fake.callsTo('POST', '/api/auth/logout')
    expect(logout.body).toEqual({ refresh_token: 'its-refresh' })
    expect(logout.headers.Authorization).toBeUndefined()
  })
})
