export { createProgram } from "./program.ts";
export { CliEnv, parseCliConfig, requireSetting, type CliConfig } from "./config.ts";
export { EXIT_OK, EXIT_INVALID, EXIT_FAILED, describeError, exitCodeFor } from "./exit-codes.ts";
export { toJson } from "./output.ts";
