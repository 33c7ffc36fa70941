/**
 * The scheduler's change events. Listeners run synchronously, in subscription order, on every slot
 * transition (that is how demand reaches the capacity loop at once); one that throws is logged and
 * does not keep the others from hearing the event.
 */
import type { Logger } from '../../util/logger.js';
import type { SlotEvent, SlotEventKind, SlotListener } from './types.js';

export class SlotEvents {
  private readonly listeners = new Set<SlotListener>();

  constructor(private readonly logger: Logger) {}

  /** Returns the unsubscribe function. */
  subscribe(listener: SlotListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(fleet: string, kind: SlotEventKind, instanceId?: string): void {
    const event: SlotEvent = instanceId === undefined ? { fleet, kind } : { fleet, kind, instanceId };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (e) {
        this.logger.error('slot listener failed', { fleet, error: String(e) });
      }
    }
  }
}
