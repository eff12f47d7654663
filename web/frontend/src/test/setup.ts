import { cleanup } from '@testing-library/react'
import { afterEach, vi } from 'vitest'

import { setToken } from '../api'

afterEach(() => {
  cleanup()
  setToken(null)
  window.sessionStorage.clear()
  vi.useRealTimers()
  vi.unstubAllGlobals()
})
