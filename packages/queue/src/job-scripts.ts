import type { RedisConnection } from "./redis-connection.ts";

/**
 * The Lua lakeferry runs on BullMQ's keys, in one place. Both scripts read BullMQ's layout: a job is the
 * hash `<prefix>:<queue>:<id>` (plus `…:logs`), and a finished job is a member of the `completed` or
 * `failed` sorted set. Each script handles a whole chunk of ids in one round trip.
 */

/** Per id: 0 = a live job holds the id, 1 = no job, 2 = a finished job held it and was removed. */
const CLEAR_FINISHED_JOBS = `
local completed, failed, base = KEYS[1], KEYS[2], ARGV[1]
local result = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local jobKey = base .. id
  if redis.call("ZSCORE", completed, id) or redis.call("ZSCORE", failed, id) then
    redis.call("ZREM", completed, id)
    redis.call("ZREM", failed, id)
    redis.call("DEL", jobKey, jobKey .. ":logs")
    result[i - 1] = 2
  elseif redis.call("EXISTS", jobKey) == 1 then
    result[i - 1] = 0
  else
    result[i - 1] = 1
  end
end
return result
`;

/** Per id: 1 when a job exists and is not finished (waiting, delayed, prioritized or active), else 0. */
const LIVE_JOBS = `
local completed, failed, base = KEYS[1], KEYS[2], ARGV[1]
local result = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call("EXISTS", base .. id) == 1
    and not redis.call("ZSCORE", completed, id)
    and not redis.call("ZSCORE", failed, id) then
    result[i - 1] = 1
  else
    result[i - 1] = 0
  end
end
return result
`;

/** Where a queue's keys are. */
export interface QueueKeyLayout {
  /** Key of the `completed` sorted set. */
  completed: string;
  /** Key of the `failed` sorted set. */
  failed: string;
  /** What a job id is appended to to get its hash key (`<prefix>:<queue>:`). */
  jobKeyBase: string;
}

/** The state of an id before an add, as `clearFinishedJobs` found it. */
export type IdState = "live" | "absent" | "cleared";

interface ScriptCommands {
  lakeferryClearFinishedJobs(
    completed: string,
    failed: string,
    base: string,
    ...ids: string[]
  ): Promise<number[]>;
  lakeferryLiveJobs(completed: string, failed: string, base: string, ...ids: string[]): Promise<number[]>;
}

const defined = new WeakSet<RedisConnection>();

function commands(redis: RedisConnection): ScriptCommands {
  if (!defined.has(redis)) {
    redis.defineCommand("lakeferryClearFinishedJobs", { numberOfKeys: 2, lua: CLEAR_FINISHED_JOBS });
    redis.defineCommand("lakeferryLiveJobs", { numberOfKeys: 2, lua: LIVE_JOBS, readOnly: true });
    defined.add(redis);
  }
  return redis as unknown as ScriptCommands;
}

/**
 * Removes the finished (completed or failed) jobs holding any of `ids`, so that adding the ids again
 * creates new jobs (BullMQ ignores an add whose id exists, even a finished one). Live jobs are left alone.
 */
export async function clearFinishedJobs(
  redis: RedisConnection,
  keys: QueueKeyLayout,
  ids: string[],
): Promise<IdState[]> {
  if (ids.length === 0) return [];
  const states = await commands(redis).lakeferryClearFinishedJobs(
    keys.completed,
    keys.failed,
    keys.jobKeyBase,
    ...ids,
  );
  return states.map((state) => (state === 0 ? "live" : state === 1 ? "absent" : "cleared"));
}

/** For each id, whether a job holds it that is not finished yet. */
export async function liveJobs(
  redis: RedisConnection,
  keys: QueueKeyLayout,
  ids: string[],
): Promise<boolean[]> {
  if (ids.length === 0) return [];
  const live = await commands(redis).lakeferryLiveJobs(keys.completed, keys.failed, keys.jobKeyBase, ...ids);
  return live.map((flag) => flag === 1);
}
