// A fake of the gateway for component tests: `fetch` answered by handlers, every call kept
// (with the fake clock's time when timers are faked).
import { render } from '@testing-library/react'
import type { ReactElement } from 'react'
import { MemoryRouter } from 'react-router'
import { vi } from 'vitest'

import { App } from '../App'
import { setToken } from '../api'
import type { Order, OrderStatus } from '../types'

export interface Call {
  method: string
  path: string // pathname plus query
  headers: Record<string, string>
  body: unknown
  at: number
}

export interface Reply {
  status?: number
  body?: unknown
  headers?: Record<string, string>
  /** reject like fetch does when the network is down */
  networkError?: boolean
}

export type Handler = (call: Call, match: RegExpMatchArray) => Reply | Promise<Reply>

export interface FakeApi {
  calls: Call[]
  on(method: string, pattern: string | RegExp, handler: Handler): FakeApi
  callsTo(method: string, pattern: string | RegExp): Call[]
}

function matches(pattern: string | RegExp, path: string): RegExpMatchArray | null {
  if (typeof pattern === 'string') return pattern === path ? ([path] as RegExpMatchArray) : null
  return path.match(pattern)
}

export function error(status: number, code: string, message: string, details = {}): Reply {
  return { status, body: { error: { code, message, details } } }
}

/** Stub the global fetch with a fake API; unknown routes answer 404 in the API's shape. */
export function fakeApi(): FakeApi {
  const routes: { method: string; pattern: string | RegExp; handler: Handler }[] = []
  const calls: Call[] = []
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(String(input), 'http://shop.test')
    const call: Call = {
      method: (init.method ?? 'GET').toUpperCase(),
      path: url.pathname + url.search,
      headers: { ...(init.headers as Record<string, string>) },
      body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined,
      at: Date.now(),
    }
    calls.push(call)
    if (init.signal?.aborted) throw new DOMException('aborted', 'AbortError')
    let reply: Reply = error(404, 'not_found', `no fake for ${call.method} ${call.path}`)
    for (const route of [...routes].reverse()) {
      const match = route.method === call.method ? matches(route.pattern, call.path) : null
      if (match) {
        reply = await route.handler(call, match)
        break
      }
    }
    if (reply.networkError) throw new TypeError('Failed to fetch')
    const status = reply.status ?? 200
    const text = reply.body === undefined ? '' : JSON.stringify(reply.body)
    const headers = new Headers(reply.headers)
    return {
      ok: status >= 200 && status < 300,
      status,
      headers,
      text: async () => text,
    } as unknown as Response
  })
  vi.stubGlobal('fetch', fetchMock)
  const api: FakeApi = {
    calls,
    on(method, pattern, handler) {
      routes.push({ method, pattern, handler })
      return api
    },
    callsTo(method, pattern) {
      return calls.filter((c) => c.method === method && matches(pattern, c.path) !== null)
    },
  }
  return api.on('GET', '/api/auth/me', () => ({ body: ME }))
}

export const ME = { id: 'user-1', email: 'ada@example.com', roles: ['user'] }
export const ORDER_ID = '6f1c2b1e-9a55-4d47-8c37-2f1b3a0c9d10'

export function anOrder(status: OrderStatus, changes: Partial<Order> = {}): Order {
  return {
    id: ORDER_ID,
    status,
    items: [
      {
        product_id: 'p-mug',
        name: 'Ceramic Coffee Mug',
        unit_price: '12.90',
        quantity: 2,
        line_total: '25.80',
      },
    ],
    total: '25.80',
    currency: 'EUR',
    payment_attempts: status === 'PAYMENT_FAILED' ? 3 : 1,
    created_at: '2026-01-05T10:00:00+00:00',
    updated_at: '2026-01-05T10:00:01+00:00',
    ...changes,
  }
}

/** The whole app at `path`, logged in with `token` unless null. */
export function renderApp(path: string, { token = 'test-token' }: { token?: string | null } = {}) {
  if (token !== null) setToken(token)
  return render(
    <MemoryRouter initialEntries={[path]}>
      <App />
    </MemoryRouter>,
  )
}

export function inRouter(element: ReactElement, path = '/') {
  return render(<MemoryRouter initialEntries={[path]}>{element}</MemoryRouter>)
}
