import { FILE_STATUSES as DB_STATUSES } from "@lakeferry/db";
import { expect, it } from "vitest";
import { FILE_STATUSES } from "../src/program.ts";

it("the CLI's copy of the file statuses (kept so building the program loads no package) is the database's", () => {
  expect(FILE_STATUSES).toEqual(DB_STATUSES);
});
