#!/usr/bin/env node
// `lakeferry` launcher: registers tsx (TypeScript without a build step) in this process, then runs the CLI.
// One process, so signals (SIGTERM to a worker) reach the CLI directly.
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
