import { useState } from 'react'
import { Link, useParams } from 'react-router'

import { api, imageUrl } from '../api'
import { AddToCart } from '../components/AddToCart'
import { ErrorAlert, Loading, Money } from '../components/Feedback'
import { PageHeading } from '../components/PageHeading'
import { useLoad } from '../hooks'
import { MAX_QUANTITY, parseQuantity } from '../quantity'

export function ProductPage() {
  const { id = '' } = useParams()
  const { data: product, error, loading, reload } = useLoad(
    (signal) => api.product(id, signal),
    [id],
  )
  const [quantity, setQuantity] = useState('1')
  const parsed = parseQuantity(quantity)

  if (loading) return <Loading>Loading the product…</Loading>
  if (error || product === null) {
    return (
      <section>
        <PageHeading title="Product">
          {error?.status === 404 ? 'Product not found' : 'Product'}
        </PageHeading>
        {error?.status === 404 ? (
          <p>This product does not exist (any more).</p>
        ) : (
          <ErrorAlert error={error} onRetry={reload} />
        )}
        <p>
          <Link to="/">Back to the catalog</Link>
        </p>
      </section>
    )
  }

  return (
    <article className="product-detail">
      <p className="breadcrumbs">
        <Link to="/">Catalog</Link> <span aria-hidden="true">›</span> {product.name}
      </p>
      <div className="product-detail-grid">
        <img src={imageUrl(product)} alt={product.name} width={480} height={360} />
        <div>
          <PageHeading title={product.name}>{product.name}</PageHeading>
          <p className="price large">
            <Money amount={product.price} currency={product.currency} />
          </p>
          {product.description && <p className="description">{product.description}</p>}
          <p className="muted">SKU {product.sku}</p>
          {product.active && (
            <div className="field quantity-field">
              <label htmlFor="product-quantity">Quantity</label>
              <input
                id="product-quantity"
                type="number"
                inputMode="numeric"
                min={1}
                max={MAX_QUANTITY}
                value={quantity}
                aria-invalid={parsed === null ? true : undefined}
                aria-describedby={parsed === null ? 'product-quantity-error' : undefined}
                onChange={(e) => setQuantity(e.target.value)}
              />
              {parsed === null && (
                <p className="field-error" id="product-quantity-error">
                  Choose a whole number from 1 to {MAX_QUANTITY}.
                </p>
              )}
            </div>
          )}
          {parsed !== null || !product.active ? (
            <AddToCart product={product} quantity={parsed ?? 1} />
          ) : null}
        </div>
      </div>
    </article>
  )
}
