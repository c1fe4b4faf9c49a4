-- A lease row can be waited for in turn: the process that has waited longest for it (by `next_since`) is
-- reserved as its next holder until `next_until`, so a holder that releases and asks again at once cannot
-- take it back from a waiter. Used for each Iceberg table's write lease (`write:<table>`): one write in
-- flight per table across the fleet.

-- AlterTable
ALTER TABLE "maintenance_leases" ADD COLUMN "next_holder" TEXT,
ADD COLUMN "next_since" TIMESTAMPTZ(6),
ADD COLUMN "next_until" TIMESTAMPTZ(6);
