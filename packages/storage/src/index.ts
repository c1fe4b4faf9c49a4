export {
  parseStorageUri,
  formatStorageUri,
  resolveWithinSource,
  withinSource,
  type ResolvedPath,
  toSparkUri,
  type StorageScheme,
  type StorageLocation,
  type SparkPathRule,
} from "./storage-uri.ts";
export {
  createObjectStore,
  moveDestination,
  type ObjectInfo,
  type ListPage,
  type ListOptions,
  type ObjectStore,
  type StoreOptions,
} from "./object-store.ts";
export { compileGlob, isCopyInProgress, isHiddenKey, type GlobOptions } from "./compile-glob.ts";
export { compareKeys } from "./compare-keys.ts";
export { partitionPrefixes, type PartitionTemplate } from "./partition-prefixes.ts";
export { listPrefixes, type ListPrefixesOptions } from "./list-prefixes.ts";
export {
  StorageError,
  StorageNotFoundError,
  StorageAccessDeniedError,
  StorageThrottledError,
  StorageUnavailableError,
  StorageRequestError,
  type StorageErrorContext,
} from "./errors.ts";
