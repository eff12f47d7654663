// The React app, happy path: register → log in → catalog search → product page → cart →
// checkout → the order page shows PAID; the order is in "My orders".
//
// Needs (besides lib.mjs's): PRODUCT_ID and PRODUCT_QUERY (a search that finds it).
// Screenshots: catalog, product, cart, cart-phone, order-paid.

import {
  PHONE,
  addToCartFromSearch,
  appUrl,
  env,
  expect,
  log,
  nav,
  registerAndLogIn,
  run,
  uniqueEmail,
  waitForStatus,
} from './lib.mjs'

await run('spa-checkout', async (session) => {
  const productId = env('PRODUCT_ID')
  const query = env('PRODUCT_QUERY')
  const page = await session.newPage()
  const email = uniqueEmail('browser')
  await registerAndLogIn(page, email, 'correct horse battery')

  // the catalog, logged in (so every card has its button)
  await page.goto(appUrl('/'))
  await page.locator('.product-card').first().waitFor()
  await page.getByText(/\d+ products?/).waitFor()
  await page.waitForFunction(() =>
    [...document.querySelectorAll('.product-card img')].every((img) => img.complete),
  )
  await session.screenshot(page, 'catalog')

  await addToCartFromSearch(page, { query, productId, quantity: 2 })
  await session.screenshot(page, 'product')

  // the cart: two of them, then one more with the + button
  await nav(page, 'Cart').click()
  await page.getByRole('heading', { name: 'Your cart' }).waitFor()
  const quantity = page.locator('.cart-line input[type="number"]')
  expect((await quantity.inputValue()) === '2', 'the cart has the 2 added on the product page')
  await page.getByRole('button', { name: /^Increase quantity of / }).click()
  await page.waitForFunction(
    () => document.querySelector('.cart-line input[type="number"]')?.value === '3',
  )
  await session.screenshot(page, 'cart')
  const phone = await session.newPage({ viewport: PHONE })
  await phone.goto(appUrl('/'))
  const token = await page.evaluate(() => sessionStorage.getItem('microshop.token'))
  await phone.evaluate((value) => sessionStorage.setItem('microshop.token', value), token)
  await phone.goto(appUrl('/cart'))
  await phone.getByRole('heading', { name: 'Your cart' }).waitFor()
  await phone.locator('.cart-line').first().waitFor()
  await session.screenshot(phone, 'cart-phone', { fullPage: true })
  await phone.context().close()

  // checkout: the order page follows the order to PAID
  await page.getByRole('button', { name: 'Check out' }).click()
  await page.waitForURL(/\/app\/orders\/[0-9a-f-]{36}$/)
  await page.getByText('Your order was placed.').waitFor()
  const orderId = page.url().split('/').at(-1)
  log(`order ${orderId} placed`)
  await waitForStatus(page, 'PAID')
  expect(
    (await page.getByRole('button', { name: 'Retry payment' }).count()) === 0,
    'no retry button on a paid order',
  )
  expect(
    (await page.getByRole('button', { name: 'Cancel order' }).count()) === 0,
    'no cancel button on a paid order',
  )
  await page.locator('.event-PaymentSucceeded').waitFor()
  await session.screenshot(page, 'order-paid')

  // the cart emptied itself on OrderPlaced, and the order is listed
  await nav(page, 'My orders').click()
  await page.getByRole('heading', { name: 'My orders' }).waitFor()
  const row = page.locator('.order-row', { has: page.locator(`a[href="/app/orders/${orderId}"]`) })
  await row.locator('[data-status="PAID"]').waitFor()
  await nav(page, 'Cart').click()
  await page.getByText('Your cart is empty.').waitFor()

  // deep links work (the gateway answers every /app/... path with the app)
  await page.goto(appUrl(`/orders/${orderId}`))
  await waitForStatus(page, 'PAID')

  // log out: protected pages send us to the login page
  await page.getByRole('button', { name: 'Log out' }).click()
  await page.goto(appUrl('/orders'))
  await page.getByRole('heading', { name: 'Log in' }).waitFor()
})
