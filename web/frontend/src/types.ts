// The shapes of the public HTTP API. Money is a decimal string plus a currency
// code: the app shows it as given and never does arithmetic on it.

export interface Product {
  id: string
  sku: string
  name: string
  description: string
  price: string
  currency: string
  image_url: string | null
  active: boolean
}

export interface ProductPage {
  items: Product[]
  total: number
}

export interface Line {
  product_id: string
  name: string
  unit_price: string
  quantity: number
  line_total: string
}

// A cart line is priced at the catalog's current price and names the product's SKU (null
// when unknown). `available: false`: the product is no longer sold; the line counts for
// nothing in the total and checkout refuses the cart (409 product_unavailable).
export interface CartLine extends Line {
  sku?: string | null
  available: boolean
}

export interface Cart {
  items: CartLine[]
  total: string
  currency: string | null // null while the cart is empty
  version: number
}

export type OrderStatus = 'PENDING_PAYMENT' | 'PAID' | 'PAYMENT_FAILED' | 'CANCELLED'

export interface Order {
  id: string
  status: OrderStatus
  items: Line[]
  total: string
  currency: string
  payment_attempts: number
  created_at: string
  updated_at: string
}

export interface OrderList {
  items: Order[]
}

export interface OrderEvent {
  type: string
  stream?: string
  stream_version: number
  recorded_at: string
  data: Record<string, unknown>
  correlation_id: string | null
}

export interface Timeline {
  items: OrderEvent[]
}

export interface User {
  id: string
  email: string
  roles: string[]
}

/** What login and refresh answer. */
export interface LoginResult {
  access_token: string
  token_type: string
  expires_in: number
  refresh_token: string
  refresh_expires_in: number
}
