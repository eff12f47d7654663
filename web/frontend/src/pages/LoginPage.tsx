import { useState } from 'react'
import type { FormEvent } from 'react'
import { Link, useLocation, useNavigate } from 'react-router'

import type { ApiError } from '../api'
import { useAuth } from '../auth'
import type { LoginRedirectState } from '../auth'
import { ErrorAlert } from '../components/Feedback'
import { Field } from '../components/Field'
import { PageHeading } from '../components/PageHeading'
import { asApiError } from '../hooks'

const FIELDS = { email: 'Email', password: 'Password' }

export function LoginPage() {
  const { login, token, user } = useAuth()
  const navigate = useNavigate()
  const state = (useLocation().state ?? {}) as LoginRedirectState
  const [email, setEmail] = useState(state.email ?? '')
  const [password, setPassword] = useState('')
  const [error, setError] = useState<ApiError | null>(null)
  const [invalid, setInvalid] = useState<Record<string, string>>({})
  const [busy, setBusy] = useState(false)

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault()
    const problems: Record<string, string> = {}
    if (!email.trim()) problems.email = 'Enter your email address.'
    if (!password) problems.password = 'Enter your password.'
    setInvalid(problems)
    setError(null)
    if (Object.keys(problems).length) return
    setBusy(true)
    try {
      await login(email.trim(), password)
      const back = state.from && /^\/(?!\/)/.test(state.from) ? state.from : '/'
      navigate(back, { replace: true })
    } catch (failure) {
      const apiError = asApiError(failure)
      setError(apiError)
      setInvalid(apiError.fieldErrors())
      setBusy(false)
    }
  }

  return (
    <section className="narrow">
      <PageHeading title="Log in">Log in</PageHeading>
      {state.expired && (
        <p className="alert alert-info" role="status">
          Your session has ended. Please log in again.
        </p>
      )}
      {state.registered && (
        <p className="alert alert-success" role="status">
          Your account was created. Log in with your email and password.
        </p>
      )}
      {token !== null && user && !busy && (
        <p className="alert alert-info">You are logged in as {user.email}.</p>
      )}
      <form onSubmit={onSubmit} noValidate aria-describedby={error ? 'login-error' : undefined}>
        <div id="login-error">
          <ErrorAlert error={error} fields={FIELDS} />
        </div>
        <Field
          id="login-email"
          label="Email"
          type="email"
          autoComplete="email"
          required
          value={email}
          error={invalid.email}
          onChange={(e) => setEmail(e.target.value)}
        />
        <Field
          id="login-password"
          label="Password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          error={invalid.password}
          onChange={(e) => setPassword(e.target.value)}
        />
        <button type="submit" className="button" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
      <p>
        New here? <Link to="/register">Create an account</Link>
      </p>
    </section>
  )
}
