import { NavLink, Outlet, useNavigate } from 'react-router'

import { useAuth } from '../auth'

export function Layout() {
  const { token, user, logout } = useAuth()
  const navigate = useNavigate()
  const onLogout = () => {
    logout()
    navigate('/', { replace: true })
  }
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="site-header">
        <div className="container header-row">
          <NavLink to="/" className="brand" end>
            MicroShop
          </NavLink>
          <nav aria-label="Main">
            <ul className="nav-list">
              <li>
                <NavLink to="/" end>
                  Catalog
                </NavLink>
              </li>
              {token !== null ? (
                <>
                  <li>
                    <NavLink to="/cart">Cart</NavLink>
                  </li>
                  <li>
                    <NavLink to="/orders">My orders</NavLink>
                  </li>
                  <li className="nav-user">
                    {user && <span className="user-email">{user.email}</span>}
                    <button type="button" className="link-button" onClick={onLogout}>
                      Log out
                    </button>
                  </li>
                </>
              ) : (
                <>
                  <li>
                    <NavLink to="/login">Log in</NavLink>
                  </li>
                  <li>
                    <NavLink to="/register">Register</NavLink>
                  </li>
                </>
              )}
            </ul>
          </nav>
        </div>
      </header>
      <main id="main" className="container">
        <Outlet />
      </main>
      <footer className="site-footer">
        <div className="container">MicroShop · an event-sourced demo shop</div>
      </footer>
    </>
  )
}
