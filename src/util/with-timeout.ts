/**
 * `promise`, or a rejection with `onTimeout()` once `ms` have passed, whichever comes first. The
 * timer is cleared when the promise settles and never keeps the process alive. The promise
 * itself runs on: this only stops waiting for it.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
    timer.unref();
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
