export {
  LakeferryError,
  InvalidInputError,
  isRetryable,
  outageOf,
  errorType,
  errorMessage,
  type LakeferryErrorOptions,
  type Outage,
} from "./errors.ts";
export { createLogger, type Logger, type LogLevel } from "./logger.ts";
