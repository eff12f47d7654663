import { useEffect, useState } from 'react'
import type { FormEvent } from 'react'
import { Link, useSearchParams } from 'react-router'

import { api, imageUrl } from '../api'
import { AddToCart } from '../components/AddToCart'
import { ErrorAlert, Loading, Money } from '../components/Feedback'
import { PageHeading } from '../components/PageHeading'
import { useLoad } from '../hooks'

export const PAGE_SIZE = 12

function pageOf(value: string | null): number {
  const page = Number(value)
  return Number.isInteger(page) && page >= 1 ? page : 1
}

export function CatalogPage() {
  const [params, setParams] = useSearchParams()
  const q = params.get('q')?.trim() ?? ''
  const page = pageOf(params.get('page'))
  const [draft, setDraft] = useState(q)
  useEffect(() => setDraft(q), [q])

  const { data, error, loading, reload } = useLoad(
    (signal) => api.products({ q, limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE }, signal),
    [q, page],
  )
  const pages = data ? Math.max(1, Math.ceil(data.total / PAGE_SIZE)) : 1

  const onSearch = (event: FormEvent) => {
    event.preventDefault()
    const next = new URLSearchParams()
    if (draft.trim()) next.set('q', draft.trim())
    setParams(next)
  }
  const goTo = (target: number) => {
    const next = new URLSearchParams(params)
    if (target > 1) next.set('page', String(target))
    else next.delete('page')
    setParams(next)
  }

  return (
    <section>
      <PageHeading title={q ? `Search: ${q}` : 'Catalog'}>Catalog</PageHeading>
      <form className="search" role="search" onSubmit={onSearch}>
        <label htmlFor="catalog-search">Search products</label>
        <div className="search-row">
          <input
            id="catalog-search"
            type="search"
            value={draft}
            maxLength={200}
            placeholder="mug, tea, notebook…"
            onChange={(e) => setDraft(e.target.value)}
          />
          <button type="submit" className="button">
            Search
          </button>
        </div>
      </form>

      <p className="result-count" role="status">
        {data && !loading
          ? data.total === 0
            ? q
              ? `No products match “${q}”.`
              : 'The catalog is empty.'
            : `${data.total} ${data.total === 1 ? 'product' : 'products'}${q ? ` matching “${q}”` : ''}`
          : ''}
      </p>

      {error && <ErrorAlert error={error} onRetry={reload} />}
      {loading && !error && <Loading>Loading products…</Loading>}
      {data && (
        <ul className="product-grid" aria-busy={loading}>
          {data.items.map((product) => (
            <li key={product.id} className="card product-card">
              <Link to={`/products/${product.id}`} className="product-link">
                <img src={imageUrl(product)} alt="" width={320} height={240} loading="lazy" />
                <span className="product-name">{product.name}</span>
              </Link>
              <p className="price">
                <Money amount={product.price} currency={product.currency} />
              </p>
              <AddToCart product={product} compact />
            </li>
          ))}
        </ul>
      )}
      {data && pages > 1 && (
        <nav className="pager" aria-label="Pages">
          <button
            type="button"
            className="button secondary"
            disabled={page <= 1 || loading}
            onClick={() => goTo(page - 1)}
          >
            Previous
          </button>
          <span aria-current="page">
            Page {page} of {pages}
          </span>
          <button
            type="button"
            className="button secondary"
            disabled={page >= pages || loading}
            onClick={() => goTo(page + 1)}
          >
            Next
          </button>
        </nav>
      )}
    </section>
  )
}
