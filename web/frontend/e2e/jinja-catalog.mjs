// The server-rendered catalog (web/templates) in a browser with JavaScript switched off:
// products listed, the paging links, the search form (`q`), and a product page with its
// name and price. The pages are plain HTML and forms, so all of it must work without JS.
//
// Needs (besides lib.mjs's): PRODUCT_ID, PRODUCT_QUERY (a search that finds it and whose
// results all have it in their name), PRODUCT_NAME, PRODUCT_PRICE (as shown: "12.90 EUR"),
// PRODUCT_SKU. The catalog must hold more than one page (12) of products.
// Screenshots: jinja-catalog, jinja-product.

import { appUrl, env, expect, log, pageUrl, run } from './lib.mjs'

const PER_PAGE = 12

/** The product ids the catalog page links to, in order. */
async function productIds(page) {
  const hrefs = await page.locator('ul.grid li.card a[href^="/products/"]').evaluateAll(
    (links) => links.map((a) => a.getAttribute('href')),
  )
  return hrefs.map((href) => href.split('/').at(-1))
}

/** The catalog's "N products · page P of M" line, parsed. */
async function summary(page) {
  const text = await page.locator('main p.muted').first().innerText()
  const found = /^(\d+) products?(?: · page (\d+) of (\d+))?$/.exec(text.trim())
  expect(found, `the catalog says how many products there are (got ${JSON.stringify(text)})`)
  return { total: Number(found[1]), page: Number(found[2] ?? 1), pages: Number(found[3] ?? 1) }
}

async function open(page, url) {
  const response = await page.goto(url)
  expect(response?.status() === 200, `GET ${url}: HTTP ${response?.status()}`)
}

await run('jinja-catalog', async (session) => {
  const productId = env('PRODUCT_ID')
  const query = env('PRODUCT_QUERY')
  const name = env('PRODUCT_NAME')
  const price = env('PRODUCT_PRICE')
  const sku = env('PRODUCT_SKU')
  const page = await session.newPage({ javaScriptEnabled: false })

  // scripts really are off: the React app cannot even start
  await open(page, appUrl('/'))
  await page.locator('#root').waitFor({ state: 'attached' })
  const root = await page.locator('#root').innerHTML()
  expect(root === '', `the React app renders nothing without JS (got ${root.slice(0, 80)})`)

  // the catalog: a full first page of products, no script anywhere
  await open(page, pageUrl('/'))
  await page.getByRole('heading', { name: 'Catalog', level: 1 }).waitFor()
  expect((await page.locator('script').count()) === 0, 'the catalog has no <script>')
  const all = await summary(page)
  expect(all.pages >= 2 && all.page === 1, `page 1 of several (${JSON.stringify(all)})`)
  const first = await productIds(page)
  expect(first.length === PER_PAGE, `${PER_PAGE} products on page 1 (got ${first.length})`)
  for (const img of await page.locator('ul.grid img').all()) {
    expect(await img.evaluate((i) => i.complete && i.naturalWidth > 0), 'every picture loaded')
  }
  await session.screenshot(page, 'jinja-catalog')

  // paging: "Next" shows other products, "Previous" the first ones again
  await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: /Next/ }).click()
  await page.waitForURL((url) => url.searchParams.get('page') === '2')
  const second = await summary(page)
  expect(second.page === 2 && second.total === all.total, `page 2 (${JSON.stringify(second)})`)
  const next = await productIds(page)
  expect(next.length > 0, 'page 2 lists products')
  expect(!next.some((id) => first.includes(id)), 'page 2 shows none of page 1')
  await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: /Previous/ })
    .click()
  await page.waitForURL((url) => url.pathname === '/' && !url.searchParams.has('page'))
  expect(
    JSON.stringify(await productIds(page)) === JSON.stringify(first),
    'Previous shows page 1 again',
  )
  log(`paged through ${all.total} products (${all.pages} pages)`)

  // the search form: a GET with q, results matching it, the query kept in the field
  const search = page.getByRole('search')
  await search.getByLabel('Search products').fill(query)
  await search.getByRole('button', { name: 'Search' }).click()
  await page.waitForURL((url) => url.searchParams.get('q') === query)
  await page.getByRole('heading', { name: `Products matching “${query}”` }).waitFor()
  expect((await search.getByLabel('Search products').inputValue()) === query, 'q stays filled in')
  const found = await summary(page)
  expect(found.total >= 1 && found.total < all.total, `the search narrows (${found.total})`)
  const names = await page.locator('ul.grid li.card .name').allInnerTexts()
  expect(names.length === Math.min(found.total, PER_PAGE), 'as many cards as the count says')
  expect(
    names.every((n) => n.toLowerCase().includes(query.toLowerCase())),
    `every result matches ${JSON.stringify(query)}: ${JSON.stringify(names)}`,
  )
  expect((await productIds(page)).includes(productId), 'the product is among the results')

  const nothing = `nothing-like-this-${Date.now().toString(36)}`
  await search.getByLabel('Search products').fill(nothing)
  await search.getByRole('button', { name: 'Search' }).click()
  await page.getByText('No products match your search.').waitFor()
  await search.getByRole('link', { name: 'Clear' }).click()
  await page.getByRole('heading', { name: 'Catalog', level: 1 }).waitFor()

  // the product page, reached from the search results
  await search.getByLabel('Search products').fill(query)
  await search.getByRole('button', { name: 'Search' }).click()
  await page.locator(`ul.grid a[href="/products/${productId}"]`).click()
  await page.waitForURL((url) => url.pathname === `/products/${productId}`)
  await page.getByRole('heading', { name, level: 1 }).waitFor()
  const shown = (await page.locator('article.product .price').innerText()).trim()
  expect(shown === price, `the price is ${price} (got ${JSON.stringify(shown)})`)
  expect((await page.locator('article.product dd code').innerText()).trim() === sku, 'the SKU')
  const picture = page.getByRole('img', { name: `Picture of ${name}` })
  expect(await picture.evaluate((i) => i.complete && i.naturalWidth > 0), 'the picture loaded')
  expect((await page.locator('script').count()) === 0, 'the product page has no <script>')
  expect((await page.title()).startsWith(name), 'the title names the product')
  await session.screenshot(page, 'jinja-product')

  await page.getByRole('link', { name: '← Catalog' }).click()
  await page.getByRole('heading', { name: 'Catalog', level: 1 }).waitFor()
})
