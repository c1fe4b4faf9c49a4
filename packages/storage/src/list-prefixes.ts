import { InvalidInputError } from "@lakeferry/core";
import type { ListPage, ObjectStore } from "./object-store.ts";

export interface ListPrefixesOptions {
  /** Prefixes listed at the same time. Default 4. */
  concurrency?: number;
  /** Objects per list request; default each service's own page. */
  pageSize?: number;
  /** Stops every listing. */
  signal?: AbortSignal;
}

/** Drops duplicates and prefixes inside another given prefix, whose objects would be listed twice. */
function independent(prefixes: string[]): string[] {
  const sorted = [...new Set(prefixes)].sort();
  return sorted.filter((prefix, index) => !sorted.slice(0, index).some((other) => prefix.startsWith(other)));
}

interface Running {
  iterator: AsyncIterator<ListPage>;
  next: Promise<{ running: Running; result: IteratorResult<ListPage> }>;
}

/**
 * Lists independent prefixes of one store in parallel (e.g. the partitions of `partitionPrefixes`) and
 * streams pages as they arrive, each listing holding at most one page ahead. A prefix contained in
 * another is listed once, with the other. The first failure stops every listing and is thrown.
 */
export async function* listPrefixes(
  store: ObjectStore,
  prefixes: string[],
  options: ListPrefixesOptions = {},
): AsyncGenerator<ListPage> {
  const concurrency = options.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new InvalidInputError("concurrency", `must be an integer >= 1, got ${concurrency}`);
  }
  const pending = independent(prefixes);
  const running = new Set<Running>();
  const advance = (entry: Running): void => {
    entry.next = entry.iterator.next().then((result) => ({ running: entry, result }));
    // Handled where it is awaited; this keeps a failure seen after the consumer stopped from going unhandled.
    entry.next.catch(() => {});
  };
  const fill = (): void => {
    while (running.size < concurrency && pending.length > 0) {
      const prefix = pending.shift() as string;
      const listing = store.listPages(prefix, { pageSize: options.pageSize, signal: options.signal });
      const entry = { iterator: listing[Symbol.asyncIterator]() } as Running;
      advance(entry);
      running.add(entry);
    }
  };
  try {
    fill();
    while (running.size > 0) {
      const { running: entry, result } = await Promise.race([...running].map((item) => item.next));
      if (result.done) {
        running.delete(entry);
        fill();
        continue;
      }
      advance(entry);
      yield result.value;
    }
  } finally {
    // Ends the other listings (a consumer that stopped early, or a failure).
    await Promise.allSettled([...running].map(async (entry) => entry.iterator.return?.()));
  }
}
