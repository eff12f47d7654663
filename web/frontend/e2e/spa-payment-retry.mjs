// The React app when payments fail: with success_rate 0 the order ends PAYMENT_FAILED and
// the page offers "Retry payment"; with the rate back at 1.0 a click on it gets the order
// PAID, and the timeline tells the whole story. The success rate is set back to 1.0 at the
// end whatever happens (the stack is shared with other tests).
//
// Needs (besides lib.mjs's): PRODUCT_ID and PRODUCT_QUERY, PAYMENT_URL, INTERNAL_API_KEY.
// Screenshots: order-payment-failed, timeline.

import {
  addToCartFromSearch,
  env,
  expect,
  log,
  nav,
  paymentSettings,
  registerAndLogIn,
  run,
  uniqueEmail,
  waitForStatus,
} from './lib.mjs'

await run('spa-payment-retry', async (session) => {
  const productId = env('PRODUCT_ID')
  const query = env('PRODUCT_QUERY')
  try {
    await paymentSettings({ success_rate: 0.0, latency_ms: 0 })
    const page = await session.newPage()
    await registerAndLogIn(page, uniqueEmail('retry'), 'correct horse battery')
    await addToCartFromSearch(page, { query, productId, quantity: 1 })
    await nav(page, 'Cart').click()
    await page.getByRole('button', { name: 'Check out' }).click()
    await page.waitForURL(/\/app\/orders\/[0-9a-f-]{36}$/)
    log(`order ${page.url().split('/').at(-1)} placed with payments failing`)

    await waitForStatus(page, 'PAYMENT_FAILED')
    const retry = page.getByRole('button', { name: 'Retry payment' })
    await retry.waitFor()
    await page.getByRole('button', { name: 'Cancel order' }).waitFor()
    await page.locator('.event-PaymentFailed').waitFor()
    await session.screenshot(page, 'order-payment-failed')

    await paymentSettings({ success_rate: 1.0, latency_ms: 0 })
    await retry.click()
    await page.getByText('Payment retry requested.').waitFor()
    await waitForStatus(page, 'PAID')
    expect((await retry.count()) === 0, 'the retry button is gone once PAID')

    // the timeline: declined attempts, the failure, the retry, the charge
    for (const type of ['OrderPlaced', 'PaymentAttemptFailed', 'PaymentFailed',
      'PaymentRetryRequested', 'PaymentCharged', 'PaymentSucceeded']) {
      await page.locator(`.event-${type}`).first().waitFor()
    }
    const timeline = page.locator('section.timeline')
    await timeline.scrollIntoViewIfNeeded()
    await session.screenshot(page, 'timeline', { locator: timeline })
  } finally {
    await paymentSettings({ success_rate: 1.0, latency_ms: 0 })
  }
})
