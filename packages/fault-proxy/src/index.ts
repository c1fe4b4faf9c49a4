export {
  FaultProxy,
  type FaultProxyOptions,
  type FaultProxyStats,
  type CutEveryOptions,
} from "./fault-proxy.ts";
export { runProxyCommand, type ProxyCommandReply } from "./proxy-command.ts";
