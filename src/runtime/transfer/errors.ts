/** The error of the transfer module: what went wrong moving files, with no paths of the manager. */
import { ErrorCode, FleetError, type FleetErrorOptions } from '../../errors.js';

export class TransferError extends FleetError {
  constructor(message: string, opts: FleetErrorOptions = {}) {
    super(ErrorCode.TRANSFER, message, opts);
  }
}
