import { createContext, useCallback, useContext, useEffect, useMemo, useState } from 'react'
import type { ReactNode } from 'react'
import { Navigate, useLocation } from 'react-router'

import {
  api,
  getRefreshToken,
  getToken,
  isAbort,
  onTokenChange,
  setToken,
  startSession,
} from './api'
import type { User } from './types'

interface AuthState {
  token: string | null
  user: User | null
  /** true after the API refused the token we had (the session ended) */
  expired: boolean
  login(email: string, password: string): Promise<void>
  logout(): void
}

const AuthContext = createContext<AuthState | null>(null)

export function AuthProvider({ children }: { children: ReactNode }) {
  const [token, setTokenState] = useState<string | null>(getToken)
  const [user, setUser] = useState<User | null>(null)
  const [expired, setExpired] = useState(false)

  useEffect(
    () =>
      onTokenChange((next, wasExpired) => {
        setTokenState(next)
        setExpired(wasExpired)
        if (next === null) setUser(null)
      }),
    [],
  )

  useEffect(() => {
    if (token === null) return
    const controller = new AbortController()
    api.me(controller.signal).then(setUser, (error: unknown) => {
      if (!isAbort(error)) setUser(null) // a 401 already logged us out (api.request)
    })
    return () => controller.abort()
  }, [token])

  const login = useCallback(async (email: string, password: string) => {
    startSession(await api.login(email, password))
  }, [])

  const logout = useCallback(() => {
    const refreshToken = getRefreshToken()
    setToken(null) // logged out here at once, whatever the shop answers
    if (refreshToken !== null) void api.logout(refreshToken).catch(() => undefined)
  }, [])

  const value = useMemo(
    () => ({ token, user, expired, login, logout }),
    [token, user, expired, login, logout],
  )
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>
}

export function useAuth(): AuthState {
  const auth = useContext(AuthContext)
  if (auth === null) throw new Error('useAuth needs an <AuthProvider>')
  return auth
}

export interface LoginRedirectState {
  from?: string
  expired?: boolean
  email?: string
  registered?: boolean
}

/** Its children for a logged-in user; everyone else goes to the login page (and back). */
export function RequireAuth({ children }: { children: ReactNode }) {
  const { token, expired } = useAuth()
  const location = useLocation()
  if (token === null) {
    const state: LoginRedirectState = {
      from: location.pathname + location.search,
      expired,
    }
    return <Navigate to="/login" replace state={state} />
  }
  return <>{children}</>
}
