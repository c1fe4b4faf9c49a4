export { LakeferryError, InvalidInputError, isRetryable, errorType, errorMessage } from "./errors.ts";
export { createLogger, type Logger, type LogLevel } from "./logger.ts";
