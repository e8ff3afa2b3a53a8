type Ctor<T> = { new (buffer: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number };

/**
 * A zeroed typed array on a SharedArrayBuffer: the model's arrays are shared with the scan
 * workers (scan-pool.ts) instead of copied.
 */
export function shared<T>(Type: Ctor<T>, length: number): T {
  return new Type(new SharedArrayBuffer(length * Type.BYTES_PER_ELEMENT));
}
