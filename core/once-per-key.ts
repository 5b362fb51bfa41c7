/**
 * Runs a piece of work once per key: callers at the same time and later ones share its promise.
 * A failure is forgotten, so the next caller for that key tries again (a folder made or checked
 * once per sink, whatever the number of items racing to it).
 */
export function oncePerKey<T>(): (key: string, make: () => Promise<T>) => Promise<T> {
  const started = new Map<string, Promise<T>>();
  return (key, make) => {
    let done = started.get(key);
    if (!done) {
      done = make();
      done.catch(() => started.delete(key));
      started.set(key, done);
    }
    return done;
  };
}
