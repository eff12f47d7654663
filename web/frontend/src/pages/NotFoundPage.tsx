import { Link } from 'react-router'

import { PageHeading } from '../components/PageHeading'

export function NotFoundPage() {
  return (
    <section>
      <PageHeading title="Page not found">Page not found</PageHeading>
      <p>There is nothing at this address.</p>
      <p>
        <Link to="/">Go to the catalog</Link>
      </p>
    </section>
  )
}
