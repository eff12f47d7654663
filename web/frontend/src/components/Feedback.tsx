import type { ReactNode } from 'react'

import type { ApiError } from '../api'

/** An error from the API, with its per-field details when it has any (422). */
export function ErrorAlert({
  error,
  onRetry,
  fields = {},
}: {
  error: ApiError | null
  onRetry?: () => void
  /** field name -> label, for details shown next to a form's own fields instead */
  fields?: Record<string, string>
}) {
  if (error === null) return null
  const details = Object.entries(error.fieldErrors()).filter(([field]) => !(field in fields))
  return (
    <div className="alert alert-error" role="alert">
      <p>{error.message}</p>
      {details.length > 0 && (
        <ul>
          {details.map(([field, message]) => (
            <li key={field}>
              {field === '_schema' ? message : `${field}: ${message}`}
            </li>
          ))}
        </ul>
      )}
      {onRetry && (
        <button type="button" className="button secondary" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  )
}

export function Loading({ children = 'Loading…' }: { children?: ReactNode }) {
  return (
    <p className="loading" role="status">
      <span className="spinner" aria-hidden="true" /> {children}
    </p>
  )
}

/** Money as the API gives it: a decimal string and a currency, never a float. */
export function Money({ amount, currency }: { amount: string; currency: string | null }) {
  return (
    <span className="money">
      {amount}
      {currency ? ` ${currency}` : ''}
    </span>
  )
}
