export { createApiServer, API_VERSION, type ApiServer, type ApiServerOptions } from "./server.ts";
export { runApi, loadApiKeys, type RunApiOptions } from "./run-api.ts";
export { parseApiConfig, ApiEnv, type ApiConfig } from "./config.ts";
export { ApiKeys, ROLES, roleAllows, type Role } from "./auth.ts";
export { openApiDocument, QUEUE_BOARD_PATH } from "./openapi.ts";
export type { ApiRoute } from "./api-route.ts";
