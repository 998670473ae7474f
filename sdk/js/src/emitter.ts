/**
 * A small Node-style event emitter (api.md §3.8): listeners run in registration order,
 * the same function added twice runs twice, removal needs the same reference. A
 * listener that throws is reported to the logger and never breaks the SDK or the other
 * listeners. Works in Node and browsers (no `events` module).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Listener = (...args: any[]) => void;

/** The emitter base of `RTMClient`. */
export class EventBase<T extends { [K in keyof T]: Listener }> {
  private listeners = new Map<keyof T, Listener[]>();
  /** Called with what a listener threw. */
  protected onListenerError: (event: string, error: unknown) => void = () => {};

  /** Adds `listener` for `eventName` (§3.8). */
  addEventListener<E extends keyof T>(eventName: E, listener: T[E]): void {
    this.on(eventName, listener);
  }

  /** Removes one registration of `listener` for `eventName`. */
  removeEventListener<E extends keyof T>(eventName: E, listener: T[E]): void {
    this.off(eventName, listener);
  }

  /** Node `EventEmitter.on`. */
  on<E extends keyof T>(eventName: E, listener: T[E]): this {
    if (typeof listener !== "function") return this;
    const list = this.listeners.get(eventName);
    if (list) list.push(listener);
    else this.listeners.set(eventName, [listener]);
    return this;
  }

  /** Node `EventEmitter.addListener`. */
  addListener<E extends keyof T>(eventName: E, listener: T[E]): this {
    return this.on(eventName, listener);
  }

  /** Node `EventEmitter.once`. */
  once<E extends keyof T>(eventName: E, listener: T[E]): this {
    const wrapper = ((...args: unknown[]) => {
      this.off(eventName, wrapper as T[E]);
      (listener as Listener)(...args);
    }) as Listener & { original?: Listener };
    wrapper.original = listener;
    return this.on(eventName, wrapper as T[E]);
  }

  /** Node `EventEmitter.off` / `removeListener`: removes the last registration. */
  off<E extends keyof T>(eventName: E, listener: T[E]): this {
    const list = this.listeners.get(eventName);
    if (!list) return this;
    for (let i = list.length - 1; i >= 0; i--) {
      const l = list[i] as Listener & { original?: Listener };
      if (l === listener || l.original === listener) {
        list.splice(i, 1);
        break;
      }
    }
    if (list.length === 0) this.listeners.delete(eventName);
    return this;
  }

  /** Node `EventEmitter.removeListener`. */
  removeListener<E extends keyof T>(eventName: E, listener: T[E]): this {
    return this.off(eventName, listener);
  }

  /** Removes every listener (of one event, or of all). */
  removeAllListeners(eventName?: keyof T): this {
    if (eventName === undefined) this.listeners.clear();
    else this.listeners.delete(eventName);
    return this;
  }

  /** How many listeners `eventName` has. */
  listenerCount(eventName: keyof T): number {
    return this.listeners.get(eventName)?.length ?? 0;
  }

  /** Calls every listener of `eventName` in order; returns whether there was one. */
  emit<E extends keyof T>(eventName: E, ...args: Parameters<T[E]>): boolean {
    const list = this.listeners.get(eventName);
    if (!list || list.length === 0) return false;
    for (const l of list.length === 1 ? list : list.slice()) {
      try {
        l(...args);
      } catch (e) {
        try {
          this.onListenerError(String(eventName), e);
        } catch {
          // the logger itself failed: nothing more to do
        }
      }
    }
    return true;
  }
}
