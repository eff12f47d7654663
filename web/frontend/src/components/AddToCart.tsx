import { useState } from 'react'
import { Link, useLocation } from 'react-router'

import { api } from '../api'
import type { ApiError } from '../api'
import { useAuth } from '../auth'
import { asApiError } from '../hooks'
import type { Product } from '../types'

/** "Add to cart" for one product, with its own feedback; a link to log in for guests. */
export function AddToCart({
  product,
  quantity = 1,
  compact = false,
}: {
  product: Product
  quantity?: number
  compact?: boolean
}) {
  const { token } = useAuth()
  const location = useLocation()
  const [busy, setBusy] = useState(false)
  const [added, setAdded] = useState<number | null>(null)
  const [error, setError] = useState<ApiError | null>(null)

  if (!product.active) return <p className="muted">No longer available</p>
  if (token === null) {
    return (
      <p className="muted">
        <Link to="/login" state={{ from: location.pathname + location.search }}>
          Log in
        </Link>{' '}
        to buy
      </p>
    )
  }

  const onAdd = async () => {
    setBusy(true)
    setError(null)
    setAdded(null)
    try {
      const cart = await api.addToCart(product.id, quantity)
      setAdded(cart.items.find((line) => line.product_id === product.id)?.quantity ?? quantity)
    } catch (failure) {
      setError(asApiError(failure))
    } finally {
      setBusy(false)
    }
  }

  return (
    <div className="add-to-cart">
      <button
        type="button"
        className={compact ? 'button small' : 'button'}
        onClick={onAdd}
        disabled={busy}
        aria-label={compact ? `Add ${product.name} to cart` : undefined}
      >
        {busy ? 'Adding…' : 'Add to cart'}
      </button>
      <p className="add-feedback" role="status">
        {added !== null && (
          <>
            Added. {added} in your <Link to="/cart">cart</Link>.
          </>
        )}
      </p>
      {error && (
        <p className="field-error" role="alert">
          {error.message}
          {Object.values(error.fieldErrors()).length > 0 &&
            ` ${Object.values(error.fieldErrors()).join(' ')}`}
        </p>
      )}
    </div>
  )
}
