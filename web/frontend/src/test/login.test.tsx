import { screen, waitFor } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { beforeEach, describe, expect, it } from 'vitest'

import { getToken } from '../api'
import { ME, error, fakeApi, renderApp } from './fakeApi'
import type { FakeApi } from './fakeApi'

describe('login form', () => {
  let fake: FakeApi
  beforeEach(() => {
    fake = fakeApi()
  })

  async function submit(email: string, password: string) {
    const user = userEvent.setup()
    if (email) await user.type(screen.getByLabelText('Email'), email)
    if (password) await user.type(screen.getByLabelText('Password'), password)
    await user.click(screen.getByRole('button', { name: 'Log in' }))
  }

  it('shows the API’s message on wrong credentials and stays logged out', async () => {
    fake.on('POST', '/api/auth/login', () =>
      error(401, 'invalid_credentials', 'wrong email or password'),
    )
    renderApp('/login', { token: null })
    await submit('ada@example.com', 'not-her-password')
    expect((await screen.findByRole('alert')).textContent).toContain('wrong email or password')
    expect(getToken()).toBeNull()
    expect(screen.getByRole('heading', { name: 'Log in' })).toBeTruthy()
    expect(fake.callsTo('POST', '/api/auth/login')[0].body).toEqual({
      email: 'ada@example.com',
      password: 'not-her-password',
    })
  })

  it('puts 422 details next to their fields', async () => {
    fake.on('POST', '/api/auth/login', () =>
      error(422, 'validation_error', 'the request body is invalid', {
        email: ['not a valid email address'],
      }),
    )
    renderApp('/login', { token: null })
    await submit('ada', 'whatever-password')
    const email = screen.getByLabelText('Email')
    await waitFor(() => expect(email.getAttribute('aria-invalid')).toBe('true'))
    const describedBy = email.getAttribute('aria-describedby') ?? ''
    expect(document.getElementById(describedBy)?.textContent).toBe('not a valid email address')
    expect(screen.getByRole('alert').textContent).toContain('the request body is invalid')
    expect(screen.getByLabelText('Password').getAttribute('aria-invalid')).toBeNull()
  })

  it('says what is missing without asking the API', async () => {
    renderApp('/login', { token: null })
    await submit('', '')
    expect(screen.getByText('Enter your email address.')).toBeTruthy()
    expect(screen.getByText('Enter your password.')).toBeTruthy()
    expect(fake.callsTo('POST', '/api/auth/login')).toHaveLength(0)
  })

  it('logs in, keeps the tokens for the tab and goes where the user was headed', async () => {
    fake.on('POST', '/api/auth/login', () => ({
      body: {
        access_token: 'fresh-token',
        token_type: 'Bearer',
        expires_in: 900,
        refresh_token: 'first-refresh',
        refresh_expires_in: 604800,
      },
    }))
    fake.on('GET', '/api/orders', () => ({ body: { items: [] } }))
    renderApp('/orders', { token: null })
    expect(await screen.findByRole('heading', { name: 'Log in' })).toBeTruthy()
    await submit('ada@example.com', 'correct horse')
    expect(await screen.findByRole('heading', { name: 'My orders' })).toBeTruthy()
    expect(getToken()).toBe('fresh-token')
    expect(window.sessionStorage.getItem('microshop.token')).toBe('fresh-token')
    expect(window.sessionStorage.getItem('microshop.refresh')).toBe('first-refresh')
    expect(fake.callsTo('GET', '/api/orders')[0].headers.Authorization).toBe('Bearer fresh-token')
    expect(await screen.findByText(ME.email)).toBeTruthy()
  })

  it('goes back to the login page when the API refuses the token', async () => {
    fake.on('GET', '/api/orders', () => error(401, 'unauthorized', 'the token has expired'))
    fake.on('GET', '/api/auth/me', () => error(401, 'unauthorized', 'the token has expired'))
    renderApp('/orders', { token: 'stale-token' })
    expect(await screen.findByRole('heading', { name: 'Log in' })).toBeTruthy()
    expect(screen.getByText('Your session has ended. Please log in again.')).toBeTruthy()
    expect(getToken()).toBeNull()
    expect(window.sessionStorage.getItem('microshop.token')).toBeNull()
  })

  it('logs out', async () => {
    fake.on('GET', /^\/api\/products/, () => ({ body: { items: [], total: 0 } }))
    renderApp('/', { token: 'a-token' })
    const user = userEvent.setup()
    await user.click(await screen.findByRole('button', { name: 'Log out' }))
    expect(getToken()).toBeNull()
    expect(screen.getByRole('link', { name: 'Log in' })).toBeTruthy()
  })
})

describe('registration', () => {
  it('creates the account, then asks to log in with the email filled in', async () => {
    const fake = fakeApi()
    fake.on('POST', '/api/auth/register', (call) => ({
      status: 201,
      body: { id: 'u-1', email: (call.body as { email: string }).email },
    }))
    renderApp('/register', { token: null })
    const user = userEvent.setup()
    await user.type(screen.getByLabelText('Email'), 'grace@example.com')
    await user.type(screen.getByLabelText('Password'), 'short')
    await user.click(screen.getByRole('button', { name: 'Create account' }))
    expect(screen.getByText('Use at least 8 characters.')).toBeTruthy()
    expect(fake.callsTo('POST', '/api/auth/register')).toHaveLength(0)

    await user.type(screen.getByLabelText('Password'), '-and-longer')
    await user.click(screen.getByRole('button', { name: 'Create account' }))
    expect(await screen.findByRole('heading', { name: 'Log in' })).toBeTruthy()
    expect((screen.getByLabelText('Email') as HTMLInputElement).value).toBe('grace@example.com')
    expect(screen.getByText(/Your account was created/)).toBeTruthy()
  })

  it('shows a taken email', async () => {
    const fake = fakeApi()
    fake.on('POST', '/api/auth/register', () =>
      error(409, 'email_taken', 'an account with this email exists'),
    )
    renderApp('/register', { token: null })
    const user = userEvent.setup()
    await user.type(screen.getByLabelText('Email'), 'grace@example.com')
    await user.type(screen.getByLabelText('Password'), 'long-enough')
    await user.click(screen.getByRole('button', { name: 'Create account' }))
    expect((await screen.findByRole('alert')).textContent).toContain(
      'an account with this email exists',
    )
  })
})
