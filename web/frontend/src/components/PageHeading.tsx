import { useEffect, useRef } from 'react'
import type { ReactNode } from 'react'

let firstPage = true

/** The page's <h1>: sets the document title and, after a navigation inside the app, takes
 * the focus so screen reader and keyboard users start at the new page's top. */
export function PageHeading({ children, title }: { children: ReactNode; title: string }) {
  const ref = useRef<HTMLHeadingElement>(null)
  useEffect(() => {
    document.title = `${title} · MicroShop`
  }, [title])
  useEffect(() => {
    if (firstPage) firstPage = false
    else ref.current?.focus()
  }, [])
  return (
    <h1 ref={ref} tabIndex={-1} className="page-heading">
      {children}
    </h1>
  )
}
