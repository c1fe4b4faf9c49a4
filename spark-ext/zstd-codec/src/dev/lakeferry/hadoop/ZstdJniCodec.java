package dev.lakeferry.hadoop;

import com.github.luben.zstd.ZstdInputStreamNoFinalizer;
import com.github.luben.zstd.ZstdOutputStreamNoFinalizer;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import org.apache.hadoop.conf.Configurable;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.io.compress.CompressionCodec;
import org.apache.hadoop.io.compress.CompressionInputStream;
import org.apache.hadoop.io.compress.CompressionOutputStream;
import org.apache.hadoop.io.compress.Compressor;
import org.apache.hadoop.io.compress.Decompressor;

/**
 * A Hadoop codec for zstd files ({@code .zst}) backed by zstd-jni, which every Spark distribution ships with
 * its native library inside the jar. Hadoop's own {@code ZStandardCodec} needs libhadoop built with zstd,
 * which Spark distributions do not carry, so Spark fails to read {@code .zst} JSON, CSV and text with it.
 *
 * <p>Listed in {@code io.compression.codecs}, this codec takes the {@code .zst} extension over Hadoop's:
 * Hadoop's codec factory keys codecs by extension, and a codec registered later replaces an earlier one.
 *
 * <p>Not splittable (it does not implement {@code SplittableCompressionCodec}): one task reads a file whole,
 * as for gzip. A file of several concatenated frames reads as their concatenation. Streams work without
 * Hadoop's pooled compressors and decompressors: the {@code Compressor}/{@code Decompressor} methods answer
 * null, which Hadoop's codec pool and record readers accept.
 *
 * <p>Compression level: {@code io.compression.codec.zstd.level} (Hadoop's key for its own codec), default 3.
 */
public class ZstdJniCodec implements CompressionCodec, Configurable {
  /** Hadoop's configuration key for the zstd level, shared with its native codec. */
  public static final String LEVEL_KEY = "io.compression.codec.zstd.level";

  private static final int DEFAULT_LEVEL = 3;

  private Configuration conf;

  @Override
  public void setConf(Configuration conf) {
    this.conf = conf;
  }

  @Override
  public Configuration getConf() {
    return conf;
  }

  @Override
  public String getDefaultExtension() {
    return ".zst";
  }

  @Override
  public CompressionInputStream createInputStream(InputStream in) throws IOException {
    return new ZstdCompressionInputStream(in);
  }

  @Override
  public CompressionInputStream createInputStream(InputStream in, Decompressor decompressor) throws IOException {
    return createInputStream(in);
  }

  @Override
  public Class<? extends Decompressor> getDecompressorType() {
    return null;
  }

  @Override
  public Decompressor createDecompressor() {
    return null;
  }

  @Override
  public CompressionOutputStream createOutputStream(OutputStream out) throws IOException {
    int level = conf == null ? DEFAULT_LEVEL : conf.getInt(LEVEL_KEY, DEFAULT_LEVEL);
    return new ZstdCompressionOutputStream(out, level);
  }

  @Override
  public CompressionOutputStream createOutputStream(OutputStream out, Compressor compressor) throws IOException {
    return createOutputStream(out);
  }

  @Override
  public Class<? extends Compressor> getCompressorType() {
    return null;
  }

  @Override
  public Compressor createCompressor() {
    return null;
  }

  /** Decompresses the whole stream; positions reported are those of the compressed bytes read so far. */
  static final class ZstdCompressionInputStream extends CompressionInputStream {
    private final ZstdInputStreamNoFinalizer zstd;

    ZstdCompressionInputStream(InputStream in) throws IOException {
      super(in);
      this.zstd = new ZstdInputStreamNoFinalizer(in);
    }

    @Override
    public int read() throws IOException {
      return zstd.read();
    }

    @Override
    public int read(byte[] buffer, int offset, int length) throws IOException {
      return zstd.read(buffer, offset, length);
    }

    @Override
    public int available() throws IOException {
      return zstd.available();
    }

    @Override
    public void resetState() throws IOException {
      // Only splittable codecs are asked to restart mid-stream; a .zst file is always read from its start.
      throw new UnsupportedOperationException("a zstd stream cannot be reset; read the file from its start");
    }

    @Override
    public void close() throws IOException {
      try {
        zstd.close();
      } finally {
        super.close();
      }
    }
  }

  /**
   * Writes one zstd frame per {@link #finish()} (the next write starts another frame; zstd readers read
   * concatenated frames as one stream). {@link #close()} finishes the frame, then closes the stream below.
   */
  static final class ZstdCompressionOutputStream extends CompressionOutputStream {
    private final int level;
    private ZstdOutputStreamNoFinalizer frame;

    ZstdCompressionOutputStream(OutputStream out, int level) {
      super(out);
      this.level = level;
    }

    private ZstdOutputStreamNoFinalizer frame() throws IOException {
      if (frame == null) {
        // Ending a frame closes zstd-jni's stream: keep the stream below open for what follows.
        OutputStream unclosable =
            new FilterOutputStream(out) {
              @Override
              public void write(byte[] buffer, int offset, int length) throws IOException {
                out.write(buffer, offset, length);
              }

              @Override
              public void close() throws IOException {
                flush();
              }
            };
        frame = new ZstdOutputStreamNoFinalizer(unclosable, level);
      }
      return frame;
    }

    @Override
    public void write(int b) throws IOException {
      frame().write(b);
    }

    @Override
    public void write(byte[] buffer, int offset, int length) throws IOException {
      frame().write(buffer, offset, length);
    }

    @Override
    public void flush() throws IOException {
      if (frame != null) frame.flush();
      out.flush();
    }

    @Override
    public void finish() throws IOException {
      if (frame == null) return;
      try {
        frame.close();
      } finally {
        frame = null;
      }
    }

    @Override
    public void resetState() throws IOException {
      finish();
    }
  }
}
