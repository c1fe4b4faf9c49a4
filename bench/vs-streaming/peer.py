"""The seed's Option 3 and the plain batch job, through the same Spark Connect server as lakeferry.

  python peer.py stream REMOTE SOURCE_DIR TABLE SCHEMA CHECKPOINT_DIR
      Structured Streaming over the landing folder, trigger(availableNow), checkpointed: what a user would
      run instead of lakeferry.
  python peer.py batch REMOTE SOURCE_DIR TABLE SCHEMA
      One plain batch job reading the whole folder and appending it in one commit: no state, no per-file
      anything; the limit of the server.

Both write `_source_file` (the file each row came from) and print one JSON line:
{"seconds": <wall time of the job>, "error": <message or null>}.
"""

import json
import sys
import time

from pyspark.sql import SparkSession
from pyspark.sql.functions import col


def main() -> None:
    mode, remote, source, table, schema = sys.argv[1:6]
    spark = SparkSession.builder.remote(remote).getOrCreate()
    namespace = table.rsplit(".", 1)[0]
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {namespace}")
    error = None
    started = time.monotonic()
    try:
        if mode not in ("stream", "batch"):
            raise SystemExit(f"unknown mode {mode}: use stream or batch")
        reader = spark.readStream if mode == "stream" else spark.read
        rows = (
            reader.format("json")
            .schema(schema)
            .option("mode", "FAILFAST")
            .load(source)
            .withColumn("_source_file", col("_metadata.file_path"))
        )
        if mode == "stream":
            checkpoint = sys.argv[6]
            query = (
                rows.writeStream.format("iceberg")
                .outputMode("append")
                .trigger(availableNow=True)
                .option("checkpointLocation", checkpoint)
                .toTable(table)
            )
            query.awaitTermination()
        else:
            rows.writeTo(table).using("iceberg").createOrReplace()
    except Exception as failure:  # the bench reports what the peer does with a corrupt file
        error = str(failure).splitlines()[0][:300]
    seconds = time.monotonic() - started
    print(json.dumps({"seconds": round(seconds, 3), "error": error}), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
