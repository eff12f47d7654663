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

// -- the session: in memory, mirrored in sessionStorage (survives a reload, not the tab) -----
//
// The access token lives at most 15 minutes; the refresh token trades for a new pair at
// POST /api/auth/refresh, once (it rotates, and presenting a retired one revokes the login).
// The API hands the refresh token over in the body, so the app has to hold it in script:
// sessionStorage keeps it across a reload and drops it with the tab, and it is per tab, so
// two tabs never race to rotate one token (one shared through localStorage would be rotated
// by one tab and then "reused" by the other, which ends the login). Its exposure is the
// access token's: script running in the page could read either; the app renders no HTML
// from data and the gateway serves it with a strict Content-Security-Policy, and a stolen
// refresh token is caught the first time both the thief and the app use it.

const TOKEN_KEY = 'microshop.token'
const REFRESH_KEY = 'microshop.refresh'
const EXPIRES_KEY = 'microshop.expires'
/** Refresh this long before the access token expires rather than wait for a 401. */
const REFRESH_AHEAD_MS = 30_000

function storage(): Storage | null {
  try {
    return typeof window === 'undefined' ? null : window.sessionStorage
  } catch {
    return null // storage disabled by the browser
  }
}

function stored(key: string): string | null {
  return storage()?.getItem(key) ?? null
}

function store(key: string, value: string | null): void {
  if (value === null) storage()?.removeItem(key)
  else storage()?.setItem(key, value)
}

let token: string | null = stored(TOKEN_KEY)
let refreshToken: string | null = stored(REFRESH_KEY)
let expiresAt: number | null = Number(stored(EXPIRES_KEY)) || null
const tokenListeners = new Set<(token: string | null, expired: boolean) => void>()

export function getToken(): string | null {
  return token
}

export function getRefreshToken(): string | null {
  return refreshToken
}

/** Set the access token alone; null ends the session (the refresh token goes too). */
export function setToken(value: string | null, { expired = false } = {}): void {
  token = value
  store(TOKEN_KEY, value)
  if (value === null) {
    refreshToken = expiresAt = null
    store(REFRESH_KEY, null)
    store(EXPIRES_KEY, null)
  }
  for (const listener of tokenListeners) listener(value, expired)
}

/** Keep what login or refresh answered: both tokens and when the access token expires. */
export function startSession(tokens: LoginResult): void {
  refreshToken = tokens.refresh_token
  expiresAt = Date.now() + tokens.expires_in * 1000
  store(REFRESH_KEY, refreshToken)
  store(EXPIRES_KEY, String(expiresAt))
  setToken(tokens.access_token)
}

/** Called with the new token on every change; `expired` when the API refused the old one. */
export function onTokenChange(
  listener: (token: string | null, expired: boolean) => void,
): () => void {
  tokenListeners.add(listener)
  return () => tokenListeners.delete(listener)
}

let refreshing: Promise<boolean> | null = null

/** Trade the refresh token for a new pair, once for every caller that asks meanwhile (a
 * second trade of the same token would revoke the login). true: there is a fresh access
 * token; false: the session has ended. Throws an ApiError when the shop could not say. */
export function refreshSession(): Promise<boolean> {
  refreshing ??= tradeRefreshToken().finally(() => {
    refreshing = null
  })
  return refreshing
}

async function tradeRefreshToken(): Promise<boolean> {
  const presented = refreshToken
  if (presented === null) return false
  const { response, payload } = await send('POST', '/api/auth/refresh', {
    body: { refresh_token: presented },
    authRedirect: false, // the refresh token is the credential here
  })
  if (response.ok && payload !== undefined) {
    if (refreshToken === presented) startSession(payload as LoginResult)
    return true
  }
  if (response.status === 401 || response.status === 422) {
    if (refreshToken === presented) setToken(null, { expired: true })
    return false
  }
  throw toApiError(response, payload) // the shop is in trouble: keep the session for later
}

function expiresSoon(): boolean {
  return expiresAt !== null && Date.now() >= expiresAt - REFRESH_AHEAD_MS
}

// -- requests -------------------------------------------------------------------------------

export interface RequestOptions {
  body?: unknown
  headers?: Record<string, string>
  signal?: AbortSignal
  /** false for calls where 401 means "wrong password", not "log in again" (the login form) */
  authRedirect?: boolean
}

interface Sent {
  response: Response
  payload: unknown
  /** the access token the request carried */
  bearer: string | null
}

async function send(
  method: string,
  path: string,
  { body, headers = {}, signal, authRedirect = true }: RequestOptions,
): Promise<Sent> {
  const sent: Record<string, string> = { Accept: 'application/json', ...headers }
  if (body !== undefined) sent['Content-Type'] = 'application/json'
  const bearer = authRedirect ? token : null
  if (bearer) sent.Authorization = `Bearer ${bearer}`
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
  const text = response.status === 204 ? '' : await response.text()
  let payload: unknown = undefined
  if (text) {
    try {
      payload = JSON.parse(text)
    } catch {
      payload = undefined
    }
  }
  return { response, payload, bearer }
}

/** `method path` on the API. A logged-in request refreshes the session first when the
 * access token is about to expire, and once more when the API refuses it (401), then
 * retries; when the session cannot be refreshed the user is logged out. */
export async function request<T>(
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<T> {
  const { authRedirect = true } = options
  if (authRedirect && token !== null && refreshToken !== null && expiresSoon()) {
    await refreshSession().catch(() => false) // if it failed, the request tells how
  }
  let sent = await send(method, path, options)
  if (sent.response.status === 401 && authRedirect && sent.bearer !== null) {
    const renewed =
      token !== null && token !== sent.bearer // another request refreshed meanwhile
        ? true
        : refreshToken !== null && (await refreshSession())
    if (renewed) sent = await send(method, path, options)
    if (sent.response.status === 401 && sent.bearer !== null && token === sent.bearer) {
      setToken(null, { expired: true })
    }
  }
  const { response, payload } = sent
  if (!response.ok) throw toApiError(response, payload)
  if (response.status === 204) return undefined as T
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
  /** Revoke the login of `refreshToken` (every token of it); the caller forgets them. */
  logout: (refreshToken: string) =>
    request<void>('POST', '/api/auth/logout', {
      body: { refresh_token: refreshToken },
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
