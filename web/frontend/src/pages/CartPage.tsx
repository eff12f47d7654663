import { useRef, useState } from 'react'
import type { FormEvent } from 'react'
import { Link, useNavigate } from 'react-router'

import { api, newIdempotencyKey } from '../api'
import type { ApiError } from '../api'
import { ErrorAlert, Loading, Money } from '../components/Feedback'
import { PageHeading } from '../components/PageHeading'
import { asApiError, useLoad } from '../hooks'
import { MAX_QUANTITY, parseQuantity } from '../quantity'
import type { Cart, Line } from '../types'

function without(drafts: Record<string, string>, key: string): Record<string, string> {
  const rest = { ...drafts }
  delete rest[key]
  return rest
}

export function CartPage() {
  const navigate = useNavigate()
  const { data: cart, error: loadError, loading, reload, setData } = useLoad(
    (signal) => api.cart(signal),
    [],
  )
  const [busy, setBusy] = useState<string | null>(null) // what is being saved
  const [error, setError] = useState<ApiError | null>(null)
  const [notice, setNotice] = useState('')
  const [drafts, setDrafts] = useState<Record<string, string>>({})
  // One Idempotency-Key per checkout attempt: a double click or a re-submit after a lost
  // answer sends the same key, so the shop places one order; a changed cart is a new attempt.
  const attempt = useRef<{ key: string; version: number } | null>(null)

  const change = async (what: string, action: () => Promise<Cart | void>, done: string) => {
    setBusy(what)
    setError(null)
    setNotice('')
    try {
      const next = await action()
      setData(next ?? { items: [], total: '0.00', currency: null, version: cart?.version ?? 0 })
      setNotice(done)
      return true
    } catch (failure) {
      setError(asApiError(failure))
      return false
    } finally {
      setBusy(null)
    }
  }

  const setQuantity = async (line: Line, quantity: number) => {
    const ok = await change(
      line.product_id,
      () => api.setQuantity(line.product_id, quantity),
      `${line.name}: quantity ${quantity}.`,
    )
    if (ok) setDrafts((all) => without(all, line.product_id))
  }

  const commitDraft = (line: Line) => {
    const draft = drafts[line.product_id]
    if (draft === undefined) return
    const quantity = parseQuantity(draft)
    if (quantity === null || quantity === line.quantity) {
      if (quantity === line.quantity) setDrafts((all) => without(all, line.product_id))
      return
    }
    void setQuantity(line, quantity)
  }

  const checkout = async () => {
    if (cart === null) return
    if (attempt.current === null || attempt.current.version !== cart.version) {
      attempt.current = { key: newIdempotencyKey(), version: cart.version }
    }
    setBusy('checkout')
    setError(null)
    setNotice('')
    try {
      const order = await api.placeOrder(attempt.current.key)
      navigate(`/orders/${order.id}`, { state: { placed: true } })
    } catch (failure) {
      const apiError = asApiError(failure)
      setError(apiError)
      setBusy(null)
      // the cart changed under us (emptied, or a product no longer sold): show it as it is
      if (apiError.code === 'cart_empty' || apiError.code === 'product_unavailable') reload()
    }
  }

  if (loading && cart === null) return <Loading>Loading your cart…</Loading>
  if (loadError && cart === null) {
    return (
      <section>
        <PageHeading title="Cart">Your cart</PageHeading>
        <ErrorAlert error={loadError} onRetry={reload} />
      </section>
    )
  }
  if (cart === null) return null

  return (
    <section>
      <PageHeading title="Cart">Your cart</PageHeading>
      <p className="sr-only" role="status" aria-live="polite">
        {notice}
      </p>
      <ErrorAlert error={error} />
      {cart.items.length === 0 ? (
        <div className="empty">
          <p>Your cart is empty.</p>
          <p>
            <Link to="/" className="button">
              Browse the catalog
            </Link>
          </p>
        </div>
      ) : (
        <>
          <ul className="cart-lines" aria-busy={busy !== null}>
            {cart.items.map((line) => {
              const draft = drafts[line.product_id] ?? String(line.quantity)
              const invalid = parseQuantity(draft) === null
              const inputId = `qty-${line.product_id}`
              const onSubmit = (event: FormEvent) => {
                event.preventDefault()
                commitDraft(line)
              }
              return (
                <li
                  key={line.product_id}
                  className={line.available ? 'card cart-line' : 'card cart-line unavailable'}
                >
                  <div className="cart-line-name">
                    <Link to={`/products/${line.product_id}`}>{line.name}</Link>
                    {line.sku ? <span className="muted sku">SKU {line.sku}</span> : null}
                    {line.available ? (
                      <span className="muted">
                        <Money amount={line.unit_price} currency={cart.currency} /> each
                      </span>
                    ) : (
                      <span className="field-error">No longer available: remove it to check out</span>
                    )}
                  </div>
                  <form className="quantity" onSubmit={onSubmit}>
                    <button
                      type="button"
                      className="button secondary small"
                      aria-label={`Decrease quantity of ${line.name}`}
                      disabled={busy !== null || line.quantity <= 1}
                      onClick={() => setQuantity(line, line.quantity - 1)}
                    >
                      −
                    </button>
                    <label htmlFor={inputId} className="sr-only">
                      Quantity of {line.name}
                    </label>
                    <input
                      id={inputId}
                      type="number"
                      inputMode="numeric"
                      min={1}
                      max={MAX_QUANTITY}
                      value={draft}
                      aria-invalid={invalid ? true : undefined}
                      aria-describedby={invalid ? `${inputId}-error` : undefined}
                      disabled={busy !== null}
                      onChange={(e) =>
                        setDrafts((all) => ({ ...all, [line.product_id]: e.target.value }))
                      }
                      onBlur={() => commitDraft(line)}
                    />
                    <button
                      type="button"
                      className="button secondary small"
                      aria-label={`Increase quantity of ${line.name}`}
                      disabled={busy !== null || line.quantity >= MAX_QUANTITY}
                      onClick={() => setQuantity(line, line.quantity + 1)}
                    >
                      +
                    </button>
                    {invalid && (
                      <p className="field-error" id={`${inputId}-error`}>
                        Choose 1 to {MAX_QUANTITY}.
                      </p>
                    )}
                  </form>
                  <p className="line-total">
                    <Money amount={line.line_total} currency={cart.currency} />
                  </p>
                  <button
                    type="button"
                    className="link-button danger"
                    aria-label={`Remove ${line.name}`}
                    disabled={busy !== null}
                    onClick={() =>
                      change(
                        line.product_id,
                        () => api.removeFromCart(line.product_id),
                        `${line.name} removed.`,
                      )
                    }
                  >
                    Remove
                  </button>
                </li>
              )
            })}
          </ul>
          <div className="cart-summary card">
            <p className="cart-total">
              Total <Money amount={cart.total} currency={cart.currency} />
            </p>
            <div className="actions">
              <button
                type="button"
                className="button secondary"
                disabled={busy !== null}
                onClick={async () => {
                  if (await change('clear', () => api.clearCart(), 'Your cart is empty now.'))
                    reload()
                }}
              >
                Clear cart
              </button>
              <button
                type="button"
                className="button primary"
                disabled={busy !== null}
                onClick={checkout}
              >
                {busy === 'checkout' ? 'Placing your order…' : 'Check out'}
              </button>
            </div>
          </div>
        </>
      )}
    </section>
  )
}
