import { LakeferryError } from "@lakeferry/core";

/** What becomes of one file a batch refuses before writing anything. */
export interface FileRefusal {
  status: "SKIPPED" | "FAILED";
  message: string;
}

/**
 * Files a batch refuses before anything of it is written (not retried: reading them again finds the same
 * thing). Each named file settles as its entry says, under the error's code; the batch's other files are
 * written again without them.
 */
export class RefusedFilesError<R extends FileRefusal = FileRefusal> extends LakeferryError {
  readonly refused: ReadonlyMap<string, R>;

  /** `what` completes "N file(s) …" in the message. */
  constructor(code: string, what: string, refused: ReadonlyMap<string, R>) {
    const [first] = refused.entries();
    super(
      code,
      first === undefined
        ? "no file refused"
        : `${refused.size} file(s) ${what}; ${first[0]}: ${first[1].message}`,
      { retryable: false },
    );
    this.refused = refused;
  }
}
