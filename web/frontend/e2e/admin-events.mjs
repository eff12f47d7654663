// The operator pages (web/admin) follow one paid order: logged out, /admin/events sends us
// to /login, and logging in there brings us back; the event log (filtered by category), the
// order's stream and its payment stream, the OrderPlaced event with its correlation chain
// (OrderPlaced → PaymentAttempted → PaymentCharged → PaymentSucceeded, across streams), the
// projections, and the central logs searched by the order's correlation id, which hold lines
// from several services. A customer who is no admin gets "Admins only".
//
// Needs (besides lib.mjs's): ORDER_ID (an order that is PAID), CORRELATION_ID (its
// correlation id), ADMIN_EMAIL / ADMIN_PASSWORD, CUSTOMER_EMAIL / CUSTOMER_PASSWORD (an
// account without the admin role). LOG_SERVICES: the services whose log lines of the
// correlation must show up (default gateway,order,order-consumer,payment).
// Screenshots: admin-events, admin-event-chain, admin-projections, admin-logs.

import { TIMEOUT, env, expect, log, logInToPages, pageUrl, run } from './lib.mjs'

const CHAIN = ['OrderPlaced', 'PaymentAttempted', 'PaymentCharged', 'PaymentSucceeded']
const PROJECTIONS = ['orders', 'carts', 'products', 'streams', 'relay']

/** The text of column `index` (0-based) of every row of the first table under `scope`. */
async function column(scope, index) {
  return scope.locator('table').first().locator('tbody tr').evaluateAll(
    (rows, i) => rows.map((row) => row.cells[i]?.innerText.trim() ?? ''),
    index,
  )
}

/** The event types of the chain list on the page, in order. */
async function chainTypes(page) {
  return page.locator('ol.chain > li > a > strong').allInnerTexts()
}

function inOrder(types, expected, what) {
  const at = expected.map((type) => types.indexOf(type))
  expect(at.every((i) => i >= 0), `${what} has ${expected.join(', ')}: ${JSON.stringify(types)}`)
  expect(at.every((i, n) => n === 0 || at[n - 1] < i), `${what} in order: ${JSON.stringify(types)}`)
}

await run('admin-events', async (session) => {
  const orderId = env('ORDER_ID')
  const correlation = env('CORRELATION_ID')
  const adminEmail = env('ADMIN_EMAIL')
  const services = env('LOG_SERVICES', 'gateway,order,order-consumer,payment').split(',')
  const orderStream = `order-${orderId}`
  const paymentStream = `payment-${orderId}`

  // a customer is no admin: the operator pages refuse, and the header has no Admin link
  const customer = await session.newPage()
  await logInToPages(customer, env('CUSTOMER_EMAIL'), env('CUSTOMER_PASSWORD'))
  const refused = await customer.goto(pageUrl('/admin/events'))
  expect(refused?.status() === 403, `a customer gets 403 (got ${refused?.status()})`)
  await customer.getByRole('heading', { name: 'Admins only' }).waitFor()
  const mainNav = customer.getByRole('navigation', { name: 'Main' })
  expect((await mainNav.getByRole('link', { name: 'Admin' }).count()) === 0, 'no Admin link')
  await customer.context().close()

  // logged out, the event log sends us to the login form, which brings us back
  const page = await session.newPage()
  await page.goto(pageUrl('/admin/events'))
  await page.waitForURL((url) => url.pathname === '/login')
  expect(new URL(page.url()).searchParams.get('next') === '/admin/events', 'login comes back')
  await logInToPages(page, adminEmail, env('ADMIN_PASSWORD'))
  await page.waitForURL((url) => url.pathname === '/admin/events')
  await page.getByRole('heading', { name: 'Event log', level: 1 }).waitFor()
  const operator = page.getByRole('navigation', { name: 'Operator' })
  await operator.getByRole('link', { name: 'Events' }).waitFor()
  const category = page.getByLabel('Category', { exact: true })
  const categories = await category.locator('option').allInnerTexts()
  for (const name of ['cart', 'order', 'payment', 'product']) {
    expect(categories.includes(name), `category ${name} is offered: ${categories}`)
  }
  expect((await column(page, 3)).length > 0, 'the global log lists events')

  // the global log, order events only: the order's stream is there
  await category.selectOption('order')
  await page.getByRole('button', { name: 'Filter' }).click()
  await page.waitForURL((url) => url.searchParams.get('category') === 'order')
  await page.getByRole('heading', { name: 'Global log · order' }).waitFor()
  const streams = await column(page, 1)
  expect(streams.length > 0 && streams.every((s) => s.startsWith('order-')), 'order events only')
  expect(streams.includes(orderStream), `${orderStream} is in the log: ${streams.slice(0, 10)}`)
  const recent = page.locator('table').nth(1)
  await recent.locator(`a[href="/admin/events/stream/${orderStream}"]`).waitFor()
  await session.screenshot(page, 'admin-events')

  // the order's stream, through the "open stream" form
  await page.getByLabel('Stream', { exact: true }).fill(orderStream)
  await page.getByRole('button', { name: 'Open' }).click()
  await page.waitForURL((url) => url.pathname === `/admin/events/stream/${orderStream}`)
  await page.getByRole('heading', { name: `Stream ${orderStream}` }).waitFor()
  inOrder(await column(page, 2), ['OrderPlaced', 'PaymentSucceeded'], 'the order stream')
  await page.locator(`a[href="/orders/${orderId}"]`).waitFor() // its status page
  await page.getByRole('link', { name: `Payment stream ${paymentStream}` }).click()
  await page.getByRole('heading', { name: `Stream ${paymentStream}` }).waitFor()
  inOrder(await column(page, 2), ['PaymentAttempted', 'PaymentCharged'], 'the payment stream')
  await page.goBack()

  // OrderPlaced: its metadata names the correlation, and the chain runs to the payment
  await page.getByRole('link', { name: 'OrderPlaced', exact: true }).click()
  await page.getByRole('heading', { name: /^OrderPlaced/, level: 1 }).waitFor()
  await page.locator('dl.facts').getByRole('link', { name: correlation, exact: true }).waitFor()
  const placedChain = await chainTypes(page)
  inOrder(placedChain, CHAIN, 'the correlation chain of OrderPlaced')
  const current = page.locator('ol.chain > li[aria-current="true"] > a > strong')
  expect((await current.innerText()) === 'OrderPlaced', 'the chain marks the event shown')
  const streamsOfChain = await page.locator('ol.chain > li > a > code').allInnerTexts()
  for (const stream of [orderStream, paymentStream]) {
    expect(streamsOfChain.includes(stream), `the chain crosses ${stream}: ${streamsOfChain}`)
  }
  expect(streamsOfChain.some((s) => s.startsWith('cart-')), 'the checkout emptied the cart')

  // PaymentSucceeded, from the chain: caused by an event of the chain, deeper than the root
  await page.locator('ol.chain').getByRole('link', { name: 'PaymentSucceeded', exact: true })
    .click()
  await page.getByRole('heading', { name: /^PaymentSucceeded/, level: 1 }).waitFor()
  expect((await current.innerText()) === 'PaymentSucceeded', 'now PaymentSucceeded is marked')
  const succeeded = page.locator('ol.chain > li[aria-current="true"]')
  const cause = await succeeded.locator('.cause a').innerText()
  expect(cause.startsWith('PaymentCharged'), `the charge caused PaymentSucceeded: ${cause}`)
  const depth = Number((await succeeded.getAttribute('class')).match(/depth-(\d+)/)?.[1])
  expect(depth >= 1, `PaymentSucceeded is indented under its cause (depth ${depth})`)
  expect(
    JSON.stringify(await chainTypes(page)) === JSON.stringify(placedChain),
    'one correlation, one chain, whichever event of it is shown',
  )
  await session.screenshot(page, 'admin-event-chain', { fullPage: true })

  // the correlation's own page lists the same chain and links to its log lines
  await page.locator('dl.facts').getByRole('link', { name: correlation, exact: true }).click()
  await page.getByRole('heading', { name: `Correlation ${correlation}` }).waitFor()
  expect(
    JSON.stringify(await chainTypes(page)) === JSON.stringify(placedChain),
    'the correlation page shows the chain',
  )

  // projections: every read model and the relay, with a position
  await operator.getByRole('link', { name: 'Projections' }).click()
  await page.getByRole('heading', { name: 'Projections', level: 1 }).waitFor()
  for (const name of PROJECTIONS) {
    const [position, lag] = await page.locator(`tr#${name} td`).evaluateAll(
      (cells) => [cells[1].innerText.trim(), cells[2].innerText.trim()],
    )
    expect(/^\d+(\/\d+)?$/.test(position), `${name} has a position (got ${position})`)
    expect(/^\d+$/.test(lag), `${name} has a lag in events (got ${lag})`)
  }
  await page.getByRole('heading', { name: 'What holds the log back' }).waitFor()
  await session.screenshot(page, 'admin-projections')

  // the central logs, searched by the correlation id: lines arrive from log shipping
  // asynchronously, so search again until every service in `services` has some
  await operator.getByRole('link', { name: 'Logs' }).click()
  await page.getByRole('heading', { name: 'Logs', level: 1 }).waitFor()
  await page.getByLabel('Correlation id').fill(correlation)
  await page.getByRole('button', { name: 'Search' }).click()
  await page.waitForURL((url) => url.searchParams.get('correlation_id') === correlation)
  const deadline = Date.now() + TIMEOUT
  let seen = []
  for (;;) {
    await page.locator('table.logs').waitFor()
    seen = await column(page, 1)
    if (services.every((s) => seen.includes(s))) break
    if (Date.now() > deadline) {
      throw new Error(`log lines of ${correlation} only from ${[...new Set(seen)]}`)
    }
    await page.waitForTimeout(500)
    await page.reload()
  }
  const correlations = await column(page, 4)
  expect(
    correlations.every((c) => c.startsWith(correlation)),
    `every line found has the correlation id: ${[...new Set(correlations)]}`,
  )
  expect((await page.getByLabel('Correlation id').inputValue()) === correlation, 'field kept')
  log(`${seen.length} log lines of ${correlation} from ${[...new Set(seen)].sort().join(', ')}`)
  await session.screenshot(page, 'admin-logs')

  // logging out closes the operator pages again
  await page.getByRole('button', { name: `Log out ${adminEmail}` }).click()
  await page.waitForURL((url) => url.pathname === '/')
  await page.goto(pageUrl('/admin/events'))
  await page.waitForURL((url) => url.pathname === '/login')
  await page.getByRole('heading', { name: 'Log in', exact: true }).waitFor()
})
