/** The slot scheduler: the job runtime's side of capacity, and the daemon's source of demand. */
export { SlotScheduler, type SlotSchedulerOptions } from './scheduler.js';
export { LedgerWriter, type LedgerUpdate } from '../../store/ledger-writer.js';
export type {
  Acquisition,
  DemandSource,
  FleetSlotSettings,
  ReleaseOptions,
  Reservation,
  SlotCounts,
  SlotEvent,
  SlotEventKind,
  SlotInstanceView,
  SlotListener,
  UnavailableReason,
} from './types.js';
