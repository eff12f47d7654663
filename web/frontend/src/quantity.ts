export const MAX_QUANTITY = 99

/** A cart quantity typed by the user: a whole number 1..99, else null. */
export function parseQuantity(text: string): number | null {
  if (!/^\s*\d{1,2}\s*$/.test(text)) return null
  const value = Number(text)
  return value >= 1 && value <= MAX_QUANTITY ? value : null
}
