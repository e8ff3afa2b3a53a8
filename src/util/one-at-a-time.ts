/**
 * Runs the tasks given to it one after another, in the order given; a task that fails does not
 * stop the next. Bounds what runs at once to one where each task may hold much memory.
 */
export class OneAtATime {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}
