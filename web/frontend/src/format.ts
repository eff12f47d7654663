/** A timestamp of the API (ISO 8601) in the reader's locale; the raw text if unparsable. */
export function formatTime(iso: string): string {
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) return iso
  return date.toLocaleString(undefined, {
    dateStyle: 'medium',
    timeStyle: 'medium',
  })
}

export function shortId(id: string): string {
  return id.slice(0, 8)
}
