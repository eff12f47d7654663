// The HTTP client: same-origin `/api/...` when served by the gateway, VITE_API_BASE (default
// http://127.0.0.1:8000) under `npm run dev`. Errors of the API (`{"error": {code, message,
// details}}`), network failures and unexpected answers all become an `ApiError`.

import type {
  Cart,
  LoginResult,
  Order,
  OrderList,
  Product,
  ProductPage,
  Timeline,
  User,
} from './types'

const DEV_DEFAULT_BASE = 'http://127.0.0.1:8000'

function defaultBase(): string {
  const configured = import.meta.env.VITE_API_BASE as string | undefined
  if (configured !== undefined) return configured.replace(/\/+$/, '')
  return import.meta.env.DEV && import.meta.env.MODE !== 'test' ? DEV_DEFAULT_BASE : ''
}

let apiBase = defaultBase()

/** Where the API lives ('' = this origin). Tests and embedders may change it. */
export function setApiBase(base: string): void {
  apiBase = base.replace(/\/+$/, '')
}

export function apiUrl(path: string): string {
  return `${apiBase}${path}`
}

/** A product image: an absolute URL as is, a site path through the API's origin. */
export function imageUrl(product: Pick<Product, 'id' | 'image_url'>): string {
  const url = product.image_url || `/api/products/${encodeURIComponent(product.id)}/image.svg`
  return /^https?:\/\//i.test(url) ? url : apiUrl(url)
}

export type ErrorDetails = Record<string, unknown>

export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly details: ErrorDetails

  constructor(status: number, code: string, message: string, details: ErrorDetails = {}) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.details = details
  }

  /** Per-field messages of a 422 (`details: {field: [messages]}`), as text. */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {}
    for (const [field, value] of Object.entries(this.details)) {
      if (Array.isArray(value)) out[field] = value.map(String).join(' ')
      else if (typeof value === 'string') out[field] = value
    }
    return out
  }
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError'
}

// -- the access token: in memory, mirrored in sessionStorage (survives a reload, not the tab) --

const TOKEN_KEY = 'microshop.token'

function storage(): Storage | null {
  try {
    return typeof window === 'undefined' ? null : window.sessionStorage
  } catch {
    return null // storage disabled by the browser
  }
}

let token: string | null = storage()?.getItem(TOKEN_KEY) ?? null
const tokenListeners = new Set<(token: string | null, expired: boolean) => void>()

export function getToken(): string | null {
  return token
}

export function setToken(value: string | null, { expired = false } = {}): void {
  token = value
  const store = storage()
  if (value === null) store?.removeItem(TOKEN_KEY)
  else store?.setItem(TOKEN_KEY, value)
  for (const listener of tokenListeners) listener(value, expired)
}

/** Called with the new token on every change; `expired` when the API refused the old one. */
export function onTokenChange(
  listener: (token: string | null, expired: boolean) => void,
): () => void {
  tokenListeners.add(listener)
  return () => tokenListeners.delete(listener)
}

// -- requests -------------------------------------------------------------------------------

export interface RequestOptions {
  body?: unknown
  headers?: Record<string, string>
  signal?: AbortSignal
  /** false for calls where 401 means "wrong password", not "log in again" (the login form) */
  authRedirect?: boolean
}

export async function request<T>(
  method: string,
  path: string,
  { body, headers = {}, signal, authRedirect = true }: RequestOptions = {},
): Promise<T> {
  const sent: Record<string, string> = { Accept: 'application/json', ...headers }
  if (body !== undefined) sent['Content-Type'] = 'application/json'
  const current = token
  if (current) sent.Authorization = `Bearer ${current}`
  let response: Response
  try {
    response = await fetch(apiUrl(path), {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    })
  } catch (error) {
    if (isAbort(error)) throw error
    throw new ApiError(
      0,
      'network_error',
      'Cannot reach the shop. Check your connection and try again.',
    )
  }
  if (response.status === 204) return undefined as T
  const text = await response.text()
  let payload: unknown = undefined
  if (text) {
    try {
      payload = JSON.parse(text)
    } catch {
      payload = undefined
    }
  }
  if (!response.ok) {
    const error = toApiError(response, payload)
    if (response.status === 401 && authRedirect && current !== null && token === current) {
      setToken(null, { expired: true })
    }
    throw error
  }
  if (payload === undefined) {
    throw new ApiError(response.status, 'bad_response', 'The shop sent an unexpected answer.')
  }
  return payload as T
}

function toApiError(response: Response, payload: unknown): ApiError {
  const error = (payload as { error?: unknown } | undefined)?.error
  if (error && typeof error === 'object') {
    const { code, message, details } = error as Record<string, unknown>
    return new ApiError(
      response.status,
      typeof code === 'string' ? code : `http_${response.status}`,
      typeof message === 'string' && message ? message : fallbackMessage(response),
      details && typeof details === 'object' ? (details as ErrorDetails) : {},
    )
  }
  return new ApiError(response.status, `http_${response.status}`, fallbackMessage(response))
}

function fallbackMessage(response: Response): string {
  if (response.status === 429) {
    const wait = response.headers.get('Retry-After')
    return `Too many requests; try again${wait ? ` in ${wait} s` : ' shortly'}.`
  }
  if (response.status >= 500) return `The shop is having trouble (HTTP ${response.status}).`
  return `The request failed (HTTP ${response.status}).`
}

/** A fresh Idempotency-Key (random, 128 bits, hex; works outside secure contexts too). */
export function newIdempotencyKey(): string {
  const bytes = new Uint8Array(16)
  crypto.getRandomValues(bytes)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

// -- the endpoints of the public API ----------------------------------------------------------

const enc = encodeURIComponent

export const api = {
  register: (email: string, password: string) =>
    request<{ id: string; email: string }>('POST', '/api/auth/register', {
      body: { email, password },
      authRedirect: false,
    }),
  login: (email: string, password: string) =>
    request<LoginResult>('POST', '/api/auth/login', {
      body: { email, password },
      authRedirect: false,
    }),
  me: (signal?: AbortSignal) => request<User>('GET', '/api/auth/me', { signal }),

  products: (params: { q?: string; limit: number; offset: number }, signal?: AbortSignal) => {
    const query = new URLSearchParams({ limit: String(params.limit), offset: String(params.offset) })
    if (params.q) query.set('q', params.q)
    return request<ProductPage>('GET', `/api/products?${query}`, { signal })
  },
  product: (id: string, signal?: AbortSignal) =>
    request<Product>('GET', `/api/products/${enc(id)}`, { signal }),

  cart: (signal?: AbortSignal) => request<Cart>('GET', '/api/cart', { signal }),
  addToCart: (productId: string, quantity: number) =>
    request<Cart>('POST', '/api/cart/items', { body: { product_id: productId, quantity } }),
  setQuantity: (productId: string, quantity: number) =>
    request<Cart>('PUT', `/api/cart/items/${enc(productId)}`, { body: { quantity } }),
  removeFromCart: (productId: string) =>
    request<Cart>('DELETE', `/api/cart/items/${enc(productId)}`),
  clearCart: () => request<void>('DELETE', '/api/cart'),

  placeOrder: (idempotencyKey: string) =>
    request<Order>('POST', '/api/orders', { headers: { 'Idempotency-Key': idempotencyKey } }),
  orders: (signal?: AbortSignal) => request<OrderList>('GET', '/api/orders', { signal }),
  order: (id: string, signal?: AbortSignal) =>
    request<Order>('GET', `/api/orders/${enc(id)}`, { signal }),
  /** The order as it was at `asOf` (time travel). Pass a timestamp as the API wrote it, e.g. an
   * event's `recorded_at`: it has microseconds, which a trip through `Date` would cut to
   * milliseconds (and then miss an event recorded within the same millisecond). */
  orderAsOf: (id: string, asOf: string, signal?: AbortSignal) =>
    request<Order>('GET', `/api/orders/${enc(id)}?as_of=${enc(asOf)}`, { signal }),
  orderEvents: (id: string, signal?: AbortSignal) =>
    request<Timeline>('GET', `/api/orders/${enc(id)}/events`, { signal }),
  retryPayment: (id: string) => request<Order>('POST', `/api/orders/${enc(id)}/retry-payment`),
  cancelOrder: (id: string) => request<Order>('POST', `/api/orders/${enc(id)}/cancel`),
}
