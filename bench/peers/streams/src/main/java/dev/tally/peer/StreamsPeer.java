package dev.tally.peer;

import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams peer of benchmark scenario 3 (issue 24): reads Tally's encoded events
 * (src/kafka/codec.ts) from one topic with exactly_once_v2 and keeps, per minute, the events by
 * type, the page views by page and the exact set of active users, upserting the totals into
 * PostgreSQL in batches (RollupProcessor). Runs until SIGTERM; exits non-zero if a stream thread
 * dies.
 *
 * Settings come from the environment: PEER_BOOTSTRAP, PEER_TOPIC, PEER_APPLICATION_ID,
 * PEER_JDBC_URL, PEER_SCHEMA, PEER_STATE_DIR, PEER_THREADS (default 2), PEER_COMMIT_MS (default
 * 100, the exactly-once default of commit.interval.ms), PEER_FLUSH_MS (default 500: how often each
 * task upserts its changed totals into PostgreSQL).
 */
public final class StreamsPeer {
  private StreamsPeer() {}

  public static void main(String[] args) throws Exception {
    String jdbcUrl = required("PEER_JDBC_URL");
    String schema = required("PEER_SCHEMA");
    String applicationId = required("PEER_APPLICATION_ID");
    long commitMs = Long.parseLong(optional("PEER_COMMIT_MS", "100"));
    // TRICKY: each task's flush is a PostgreSQL commit its stream thread waits for. Every 100 ms
    // (6 tasks: 60 commits/s) the threads spent about half their time waiting on it and the peer
    // drained 13k events/s; every 500 ms, 16-35k on the same busy box (docs/benchmarks.md). 500 ms
    // keeps its rows, like Tally's, visible within a second (scenario 5's p99 target).
    long flushMs = Long.parseLong(optional("PEER_FLUSH_MS", "500"));
    PgSink.createTables(jdbcUrl, schema);

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, required("PEER_BOOTSTRAP"));
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.parseInt(optional("PEER_THREADS", "2")));
    props.put(StreamsConfig.STATE_DIR_CONFIG, required("PEER_STATE_DIR"));
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, commitMs);
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

    Topology topology = new Topology();
    topology.addSource(
        "events", Serdes.ByteArray().deserializer(), Serdes.ByteArray().deserializer(), required("PEER_TOPIC"));
    topology.addProcessor(
        "rollups",
        () -> new RollupProcessor(partition -> new PgSink(jdbcUrl, schema, applicationId, partition), flushMs),
        "events");
    // Persistent (RocksDB) and cached, as the DSL's aggregations are by default; changelogged, so
    // the counts, the seen users and the rows still to write survive a crash with the offsets.
    for (String store : new String[] {RollupProcessor.COUNTS, RollupProcessor.SEEN, RollupProcessor.PENDING}) {
      topology.addStateStore(
          Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(store), Serdes.String(), Serdes.Long())
              .withCachingEnabled(),
          "rollups");
    }

    KafkaStreams streams = new KafkaStreams(topology, props);
    CountDownLatch stopped = new CountDownLatch(1);
    boolean[] failed = {false};
    streams.setUncaughtExceptionHandler(
        err -> {
          System.err.println("streams-peer: a stream thread failed: " + err);
          err.printStackTrace();
          failed[0] = true;
          return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
    streams.setStateListener(
        (next, previous) -> {
          if (next == KafkaStreams.State.NOT_RUNNING || next == KafkaStreams.State.ERROR) stopped.countDown();
        });
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  streams.close(Duration.ofSeconds(20));
                  stopped.countDown();
                }));
    streams.start();
    System.err.println("streams-peer: started " + applicationId);
    stopped.await();
    if (failed[0]) {
      streams.close(Duration.ofSeconds(20));
      System.exit(1);
    }
  }

  private static String required(String name) {
    String value = System.getenv(name);
    if (value == null || value.isEmpty()) throw new IllegalArgumentException(name + " is not set");
    return value;
  }

  private static String optional(String name, String fallback) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? fallback : value;
  }
}
