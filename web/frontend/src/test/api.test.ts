import { describe, expect, it } from 'vitest'

import { ApiError, api, getToken, imageUrl, newIdempotencyKey, setApiBase, setToken } from '../api'
import { error, fakeApi } from './fakeApi'

describe('api client', () => {
  it('turns the error shape into an ApiError with field messages', async () => {
    fakeApi().on('POST', '/api/cart/items', () =>
      error(422, 'validation_error', 'the request body is invalid', {
        quantity: ['must be between 1 and 99', 'must be a whole number'],
        product_id: 'unknown',
      }),
    )
    const failure = await api.addToCart('p', 100).catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(ApiError)
    const apiError = failure as ApiError
    expect([apiError.status, apiError.code, apiError.message]).toEqual([
      422,
      'validation_error',
      'the request body is invalid',
    ])
    expect(apiError.fieldErrors()).toEqual({
      quantity: 'must be between 1 and 99 must be a whole number',
      product_id: 'unknown',
    })
  })

  it('explains answers that are not the API’s', async () => {
    fakeApi().on('GET', '/api/cart', () => ({ status: 429, headers: { 'Retry-After': '3' } }))
    await expect(api.cart()).rejects.toThrow('Too many requests; try again in 3 s.')
  })

  it('a 401 on the login form is not a logout', async () => {
    setToken('kept')
    fakeApi().on('POST', '/api/auth/login', () => error(401, 'unauthorized', 'nope'))
    await expect(api.login('a@b.c', 'x')).rejects.toThrow('nope')
    expect(getToken()).toBe('kept')
  })

  it('sends JSON with the bearer token to the configured base', async () => {
    const fake = fakeApi().on('PUT', /\/api\/cart\/items\//, () => ({
      body: { items: [], total: '0.00', currency: null, version: 3 },
    }))
    setToken('t0k3n')
    setApiBase('http://127.0.0.1:8000/')
    try {
      await api.setQuantity('a/b', 2)
    } finally {
      setApiBase('')
    }
    const [call] = fake.calls
    expect(call.path).toBe('/api/cart/items/a%2Fb')
    expect(call.headers).toMatchObject({
      Authorization: 'Bearer t0k3n',
      'Content-Type': 'application/json',
    })
    expect(call.body).toEqual({ quantity: 2 })
  })

  it('makes image URLs', () => {
    expect(imageUrl({ id: 'p 1', image_url: null })).toBe('/api/products/p%201/image.svg')
    expect(imageUrl({ id: 'p', image_url: 'https://cdn.example/mug.png' })).toBe(
      'https://cdn.example/mug.png',
    )
  })

  it('makes a fresh idempotency key each time', () => {
    const keys = new Set(Array.from({ length: 50 }, newIdempotencyKey))
    expect(keys.size).toBe(50)
    for (const key of keys) expect(key).toMatch(/^[0-9a-f]{32}$/)
  })
})
