package dev.tally.peer;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.sql.SQLException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.IntFunction;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.errors.StreamsException;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * One task's rollups: per minute and project, events by type, page views by page and the exact
 * number of distinct users, kept in state stores and upserted into PostgreSQL as absolute totals
 * every commit interval.
 *
 * No repartitioning: Tally's message key is project + user, so a user's events all reach one
 * partition and a minute's distinct users are the sum of each partition's distinct users. Each
 * task writes its own rows (a `part` column), which a reader sums; the same trick a careful
 * Streams user would play rather than shipping every event through a repartition topic.
 *
 * Why absolute totals: Kafka's transaction does not cover PostgreSQL. The rows still to write
 * live in a changelogged store (PENDING), committed with the offsets, so after a crash the
 * restored task writes them again; writing a total twice is harmless, adding an increment twice
 * is not. The PostgreSQL side is therefore effectively once, not transactional with Kafka.
 */
final class RollupProcessor implements Processor<byte[], byte[], Void, Void> {
  static final String COUNTS = "counts";
  static final String SEEN = "seen";
  static final String PENDING = "pending";
  static final char SEP = '\u001f';
  static final String PROJECT_HEADER = "tally-project";

  private static final ObjectReader READER =
      new ObjectMapper()
          .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false)
          .readerFor(Event.class);

  /** The fields of an encoded event (src/kafka/codec.ts) that the rollups need. */
  static final class Event {
    @JsonProperty("type")
    public String type;

    @JsonProperty("user_id")
    public String userId;

    @JsonProperty("timestamp")
    public String timestamp;

    @JsonProperty("page_url")
    public String pageUrl;
  }

  private final IntFunction<PgSink> sinks;
  private final long flushMs;
  private ProcessorContext<Void, Void> context;
  private KeyValueStore<String, Long> counts;
  private KeyValueStore<String, Long> seen;
  private KeyValueStore<String, Long> pending;
  /** The keys of PENDING, in memory, so an event costs no store write for a row already pending. */
  private final Set<String> pendingKeys = new HashSet<>();
  private PgSink sink;
  private long nextOffset = -1;
  private long flushedOffset = -1;
  private long skipped;

  RollupProcessor(IntFunction<PgSink> sinks, long flushMs) {
    this.sinks = sinks;
    this.flushMs = flushMs;
  }

  @Override
  public void init(ProcessorContext<Void, Void> context) {
    this.context = context;
    counts = context.getStateStore(COUNTS);
    seen = context.getStateStore(SEEN);
    pending = context.getStateStore(PENDING);
    try (KeyValueIterator<String, Long> it = pending.all()) {
      while (it.hasNext()) {
        KeyValue<String, Long> entry = it.next();
        pendingKeys.add(entry.key);
      }
    }
    sink = sinks.apply(context.taskId().partition());
    context.schedule(Duration.ofMillis(flushMs), PunctuationType.WALL_CLOCK_TIME, now -> flush());
  }

  @Override
  public void process(Record<byte[], byte[]> record) {
    // The task's only input partition: its position after this record, skipped or not.
    nextOffset = context.recordMetadata().map(m -> m.offset() + 1).orElse(nextOffset);
    Event event;
    long ts;
    try {
      event = READER.readValue(record.value());
      ts = Instant.parse(event.timestamp).toEpochMilli();
    } catch (IOException | RuntimeException err) {
      // Tally dead-letters such a message; the bench's topics hold none.
      skipped++;
      return;
    }
    if (event.type == null || event.userId == null) {
      skipped++;
      return;
    }
    Header header = record.headers().lastHeader(PROJECT_HEADER);
    String project = header == null ? "default" : new String(header.value(), StandardCharsets.UTF_8);
    String minute = Long.toString(ts - Math.floorMod(ts, 60_000L));
    String bucket = minute + SEP + project;
    add("t" + SEP + bucket + SEP + event.type);
    if ("page_view".equals(event.type) && event.pageUrl != null) add("p" + SEP + bucket + SEP + event.pageUrl);
    String user = bucket + SEP + event.userId;
    if (seen.get(user) == null) {
      seen.put(user, 1L);
      add("u" + SEP + bucket);
    }
  }

  private void add(String key) {
    Long n = counts.get(key);
    counts.put(key, n == null ? 1L : n + 1);
    if (pendingKeys.add(key)) pending.put(key, 1L);
  }

  /** Upserts the pending totals and the task's position in one PostgreSQL transaction. */
  private void flush() {
    if (pendingKeys.isEmpty() && nextOffset == flushedOffset) return;
    List<String> keys = new ArrayList<>(pendingKeys);
    try {
      sink.write(keys, counts::get, nextOffset);
    } catch (SQLException err) {
      throw new StreamsException("writing the rollups to PostgreSQL failed", err);
    }
    for (String key : keys) pending.delete(key);
    pendingKeys.clear();
    flushedOffset = nextOffset;
  }

  @Override
  public void close() {
    if (skipped > 0) System.err.println("streams-peer: skipped " + skipped + " undecodable messages");
    if (sink != null) sink.close();
  }
}
