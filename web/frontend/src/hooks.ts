import { useCallback, useEffect, useRef, useState } from 'react'
import type { DependencyList } from 'react'

import { ApiError, isAbort } from './api'

export function asApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error
  return new ApiError(0, 'client_error', error instanceof Error ? error.message : String(error))
}

export interface Loaded<T> {
  data: T | null
  error: ApiError | null
  loading: boolean
  reload(): void
  setData(data: T): void
}

/** Load something when `deps` change; the previous request is aborted, and so is the last
 * one when the component goes away. */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: DependencyList): Loaded<T> {
  const [data, setData] = useState<T | null>(null)
  const [error, setError] = useState<ApiError | null>(null)
  const [loading, setLoading] = useState(true)
  const [round, setRound] = useState(0)
  const loadRef = useRef(load)
  loadRef.current = load

  useEffect(() => {
    const controller = new AbortController()
    setLoading(true)
    setError(null)
    loadRef.current(controller.signal).then(
      (result) => {
        if (controller.signal.aborted) return
        setData(result)
        setLoading(false)
      },
      (failure: unknown) => {
        if (controller.signal.aborted || isAbort(failure)) return
        setError(asApiError(failure))
        setLoading(false)
      },
    )
    return () => controller.abort()
  }, [...deps, round])

  const reload = useCallback(() => setRound((n) => n + 1), [])
  return { data, error, loading, reload, setData }
}
