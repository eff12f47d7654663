import { useState } from 'react'
import type { FormEvent } from 'react'
import { Link, useNavigate } from 'react-router'

import { api } from '../api'
import type { ApiError } from '../api'
import type { LoginRedirectState } from '../auth'
import { ErrorAlert } from '../components/Feedback'
import { Field } from '../components/Field'
import { PageHeading } from '../components/PageHeading'
import { asApiError } from '../hooks'

const FIELDS = { email: 'Email', password: 'Password' }
const MIN_PASSWORD = 8

export function RegisterPage() {
  const navigate = useNavigate()
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const [error, setError] = useState<ApiError | null>(null)
  const [invalid, setInvalid] = useState<Record<string, string>>({})
  const [busy, setBusy] = useState(false)

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault()
    const problems: Record<string, string> = {}
    if (!email.trim()) problems.email = 'Enter your email address.'
    if (password.length < MIN_PASSWORD)
      problems.password = `Use at least ${MIN_PASSWORD} characters.`
    setInvalid(problems)
    setError(null)
    if (Object.keys(problems).length) return
    setBusy(true)
    try {
      const account = await api.register(email.trim(), password)
      const state: LoginRedirectState = { email: account.email, registered: true }
      navigate('/login', { state })
    } catch (failure) {
      const apiError = asApiError(failure)
      setError(apiError)
      setInvalid(apiError.fieldErrors())
      setBusy(false)
    }
  }

  return (
    <section className="narrow">
      <PageHeading title="Create an account">Create an account</PageHeading>
      <form onSubmit={onSubmit} noValidate>
        <ErrorAlert error={error} fields={FIELDS} />
        <Field
          id="register-email"
          label="Email"
          type="email"
          autoComplete="email"
          required
          value={email}
          error={invalid.email}
          onChange={(e) => setEmail(e.target.value)}
        />
        <Field
          id="register-password"
          label="Password"
          type="password"
          autoComplete="new-password"
          required
          minLength={MIN_PASSWORD}
          hint={`At least ${MIN_PASSWORD} characters.`}
          value={password}
          error={invalid.password}
          onChange={(e) => setPassword(e.target.value)}
        />
        <button type="submit" className="button" disabled={busy}>
          {busy ? 'Creating account…' : 'Create account'}
        </button>
      </form>
      <p>
        Already have an account? <Link to="/login">Log in</Link>
      </p>
    </section>
  )
}
