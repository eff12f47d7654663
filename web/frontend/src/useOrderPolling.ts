import { useCallback, useEffect, useRef, useState } from 'react'

import { ApiError, api, isAbort } from './api'
import { asApiError } from './hooks'
import type { Order, OrderStatus } from './types'

/** Statuses nothing changes by itself any more: PAID and CANCELLED are final, and
 * PAYMENT_FAILED waits for the customer (retry or cancel). */
export const SETTLED: ReadonlySet<OrderStatus> = new Set<OrderStatus>([
  'PAID',
  'CANCELLED',
  'PAYMENT_FAILED',
])
export const FINAL: ReadonlySet<OrderStatus> = new Set<OrderStatus>(['PAID', 'CANCELLED'])

export interface PollingOptions {
  /** ms before the second request; each wait after that is twice as long … */
  initialDelay?: number
  /** … up to this many ms */
  maxDelay?: number
}

export interface OrderPolling {
  order: Order | null
  /** the last failure; polling goes on through transient ones (network, 5xx, 429) */
  error: ApiError | null
  polling: boolean
  /** fetch now and poll again until settled */
  refresh(): void
  /** take an order the API just returned (from retry or cancel) and poll from it */
  adopt(order: Order): void
}

const GIVE_UP = new Set([401, 403, 404])

/** The live status of an order: GET /api/orders/{id} now, then after `initialDelay` ms,
 * doubling up to `maxDelay`, until the status is settled; stops when unmounted. */
export function useOrderPolling(
  orderId: string,
  { initialDelay = 250, maxDelay = 4000 }: PollingOptions = {},
): OrderPolling {
  const [order, setOrder] = useState<Order | null>(null)
  const [error, setError] = useState<ApiError | null>(null)
  const [polling, setPolling] = useState(false)
  // Every run of the loop has a number; stopping bumps it, so a late answer of an older run
  // is ignored and its timer never re-arms.
  const run = useRef(0)
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined)
  const inFlight = useRef<AbortController | null>(null)

  const stop = useCallback(() => {
    run.current += 1
    clearTimeout(timer.current)
    inFlight.current?.abort()
    inFlight.current = null
  }, [])

  const poll = useCallback(
    (firstWait: number | null) => {
      stop()
      const mine = run.current
      let delay = initialDelay
      setPolling(true)

      const schedule = (wait: number) => {
        timer.current = setTimeout(() => void tick(), wait)
      }
      const tick = async () => {
        const controller = new AbortController()
        inFlight.current = controller
        try {
          const next = await api.order(orderId, controller.signal)
          if (mine !== run.current) return
          setOrder(next)
          setError(null)
          if (SETTLED.has(next.status)) {
            setPolling(false)
            return
          }
        } catch (failure) {
          if (mine !== run.current || isAbort(failure)) return
          const apiError = asApiError(failure)
          setError(apiError)
          if (GIVE_UP.has(apiError.status)) {
            setPolling(false)
            return
          }
        }
        schedule(delay)
        delay = Math.min(delay * 2, maxDelay)
      }

      if (firstWait === null) void tick()
      else {
        schedule(firstWait)
        delay = Math.min(delay * 2, maxDelay)
      }
    },
    [orderId, initialDelay, maxDelay, stop],
  )

  useEffect(() => {
    setOrder(null)
    setError(null)
    poll(null)
    return stop
  }, [poll, stop])

  const refresh = useCallback(() => poll(null), [poll])
  const adopt = useCallback(
    (next: Order) => {
      setOrder(next)
      setError(null)
      if (SETTLED.has(next.status)) {
        stop()
        setPolling(false)
      } else poll(initialDelay)
    },
    [poll, stop, initialDelay],
  )

  return { order, error, polling, refresh, adopt }
}
